"""The engine: the trading core, its process shell, the journal, execution and backtest."""

from pathlib import Path

from engine.compiled import guard

guard(Path(__file__).resolve().parent)  # before any compiled module is imported
