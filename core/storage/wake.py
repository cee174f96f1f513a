"""Waking the notifier when a commit adds outbox rows (the SQLite adapter's stand-in for
PostgreSQL's LISTEN/NOTIFY).

A transaction that enqueues a notification marks its connection; right after COMMIT one
datagram goes to a Linux abstract UNIX socket named after the database file. The notifier
listens on it and reads the outbox at once instead of at its next poll. Nothing waits on
the send and nothing depends on it: a lost datagram, or no notifier listening, costs at
most one `ANSIM_NOTIFY_POLL_MS`, the polling that stays as the safety net.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import socket
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_names: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
_dirty: weakref.WeakSet[Any] = weakref.WeakSet()
_sender: socket.socket | None = None


def channel_for(location: str) -> bytes:
    """The abstract socket address for one database (its file's absolute path, or its URL
    without the password): no file, no length limit."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:24]
    return b"\0ansim-outbox-" + digest.encode()


def register(conn: Any, name: bytes) -> None:
    """Called when a connection is opened on the database whose channel is `name`."""
    _names[conn] = name


def mark(conn: Any) -> None:
    """The open transaction on `conn` added outbox rows."""
    _dirty.add(conn)


def discard(conn: Any) -> None:
    _dirty.discard(conn)


def after_commit(conn: Any) -> None:
    if conn not in _dirty:
        return
    _dirty.discard(conn)
    name = _names.get(conn)
    if name is None:
        return
    global _sender
    if _sender is None:
        _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sender.setblocking(False)
        atexit.register(_sender.close)
    with contextlib.suppress(OSError):  # nobody listening, or its buffer is full
        _sender.sendto(b"!", name)


class Listener:
    """The notifier's end: calls `on_wake` (on the loop) whenever datagrams arrive."""

    def __init__(self, name: bytes, on_wake: Callable[[], None]) -> None:
        self.name = name
        self.on_wake = on_wake
        self.sock: socket.socket | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.name)
        except OSError as exc:  # another notifier holds it: this one polls
            sock.close()
            log.warning("outbox wake-up unavailable; polling only", extra={"error": str(exc)})
            return False
        sock.setblocking(False)
        loop.add_reader(sock, self._drain)
        self.sock = sock
        return True

    def _drain(self) -> None:
        assert self.sock is not None
        with contextlib.suppress(BlockingIOError):
            while self.sock.recv(64):
                pass
        self.on_wake()

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None:
            loop.remove_reader(self.sock)
            self.sock.close()
            self.sock = None
