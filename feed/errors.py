"""The feed's exception hierarchy: every error the feed raises on purpose derives from FeedError.

Messages are one line naming the file, option or symbol at fault and what to do, so the CLI can
print them as they are and exit 2.
"""

from __future__ import annotations

from feed.wire import WireError


class FeedError(Exception):
    """A feed problem that is reported as one line, never a traceback."""


class SourceConfigError(FeedError, ValueError):
    """A source cannot be built from the options given (bad tier, unusable replay file, ...)."""


class UnknownSymbolError(FeedError, KeyError):
    """A request names a symbol the source does not stream."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown symbol"


class HistoryRefused(WireError):
    """The feed answered a history/info request with ``ok: false``; the message is its reason."""
