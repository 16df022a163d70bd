"""Learning on the trading core: a gymnasium environment over the backtest (``engine.ml.env``,
needs the optional ``ml`` extra), the episode that pauses the backtest at each decision
(``engine.ml.episode``), simulated data and windows (``engine.ml.data``), vectorised
environments and their speed (``engine.ml.vector``), and a numpy cross-entropy search for a
linear policy (``engine.ml.cem``). docs/ml.md.

Nothing in ``engine.core`` imports this package or gymnasium: a trained policy runs in the
``policy`` strategy from its file (``engine.core.policy_file``).
"""
