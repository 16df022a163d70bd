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


@pytest.fixture(autouse=True, scope="session")
def console_config_home() -> Iterator[Path]:
    """No test reads or writes the developer's config.toml (a keymap there would move the keys
    the tests press): $XDG_CONFIG_HOME is a fresh directory for the session, children included."""
    import os

    path = Path(tempfile.mkdtemp(prefix="mp-config-"))
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old
        shutil.rmtree(path, ignore_errors=True)


# the local Binance-protocol exchange and a live client on it (tests/live_venue.py)
from tests.live_venue import connect, secrets_in_logs, venue  # noqa: E402, F401


@pytest.fixture
def _deterministic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Console snapshots: a UTC wall clock and fresh wire sequence numbers (tests/console_fakes.py)."""
    import time

    from tests import console_fakes

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(console_fakes, "_seq", {})
    yield
    time.tzset()
