"""Execution clients: the trading core's ``ExecutionClient`` port (paper today; live next)."""
