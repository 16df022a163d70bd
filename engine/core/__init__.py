"""The pure trading core: ticks, candle closes and operator commands in; journaled facts and
events out. It imports no socket, database, wire format, terminal or wall clock (an
import-linter contract checks it); its collaborators come through ``engine.core.ports``.
The engine process (``engine.node``), the kill fallback and future backtests and training
environments are shells around it."""
