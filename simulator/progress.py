"""A live progress line on stderr: what the fleet has sent, what the broker has
acknowledged (PUBACK), and the rate, redrawn in place on a terminal and printed as plain
lines every few seconds when stderr is a file or a pipe."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Counters:
    """Shared counters; the fleet and the publisher bump them, the progress line reads."""

    published: int = 0  # every MQTT message handed to paho (events, duplicates, raw, status)
    acked: int = 0  # PUBACKs received for them
    events_sent: int = 0  # new valid events (PlanItem.counts_as_event)
    modes_sent: int = 0
    connected: int = 0
    connect_refused: int = 0
    publish_errors: int = 0
    http_errors: int = 0


@dataclass
class Progress:
    counters: Counters
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    enabled: bool = True
    every_s: float = 0.5  # redraw interval on a terminal
    plain_every_s: float = 5.0  # line interval when not a terminal
    phase: str = ""
    total: int | None = None  # items to do in this phase, when known
    done: int = 0
    note: str = ""
    _last_draw: float = 0.0
    _last_published: int = 0
    _last_t: float = field(default_factory=time.monotonic)
    _rate: float = 0.0
    _tty: bool = False
    _width: int = 0

    def __post_init__(self) -> None:
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def start_phase(self, phase: str, total: int | None = None) -> None:
        self.finish_line()
        self.phase, self.total, self.done, self.note = phase, total, 0, ""
        self._last_draw = 0.0

    def line(self) -> str:
        c = self.counters
        parts = [f"[{self.phase}]"] if self.phase else []
        if self.total:
            pct = 100.0 * self.done / self.total
            parts.append(f"{self.done}/{self.total} ({pct:5.1f}%)")
        elif self.done:
            parts.append(f"{self.done}")
        parts.append(f"sent {c.published}")
        parts.append(f"acked {c.acked}")
        parts.append(f"{self._rate:,.0f} msg/s")
        parts.append(f"online {c.connected}")
        if c.publish_errors or c.http_errors or c.connect_refused:
            parts.append(
                f"errors mqtt {c.publish_errors} http {c.http_errors} refused {c.connect_refused}"
            )
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    def tick(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        interval = self.every_s if self._tty else self.plain_every_s
        if not force and now - self._last_draw < interval:
            return
        dt = now - self._last_t
        if dt > 0.2:
            self._rate = (self.counters.published - self._last_published) / dt
            self._last_published, self._last_t = self.counters.published, now
        self._last_draw = now
        text = self.line()
        if self._tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish_line(self) -> None:
        if not self.enabled:
            return
        if self._tty and self._width:
            self.tick(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def message(self, text: str) -> None:
        """A line of its own (a warning, a phase result), not overwritten."""
        if self._tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()
