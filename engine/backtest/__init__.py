"""Backtests: the one trading core run candle by candle over history, and the report a trader reads."""
