"""The engine process shell around the trading core: sockets, poll loop, command acks,
throttled publishing, the system clock, the feed's history, and the kill fallback."""
