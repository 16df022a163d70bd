"""Shared pytest fixtures. Keep this small: each fixture here is generic and prefixed by its owner."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def feed_ipc_dir() -> Iterator[Path]:
    """A short private directory under /tmp for ipc:// sockets (paths must stay < ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    path.chmod(0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def console_root_logging() -> Iterator[None]:
    """The console's ``_setup_logging`` replaces the root handlers: put pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# the local Binance-protocol exchange and a live client on it (tests/live_venue.py)
from tests.live_venue import connect, secrets_in_logs, venue  # noqa: E402, F401
