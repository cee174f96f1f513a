"""The notifier is woken by the commit that adds outbox rows, not by its next poll: with
polling slowed to 5 s, a tamper alert's webhook still arrives well under a second after
the event (real broker, bridge, notifier and receiver)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.models import EventType
from notifier.dispatcher import RESCAN_S
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until
from tests.receiver import Receiver

POLL_MS = 5000


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def slow_poll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("wake"), ANSIM_NOTIFY_POLL_MS=str(POLL_MS))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_a_commit_with_new_notifications_wakes_the_notifier(
    slow_poll: Stack, receiver: Receiver
) -> None:
    sensors = []
    with slow_poll.api() as api:
        for i in range(5):
            hh = slow_poll.enrol(api, webhook_url=receiver.url(f"/wake{i}"))
            sensors.append(VirtualSensor.provisioned(slow_poll.provision(api, hh["household_id"])))
    for s in sensors:
        assert s.start()
    try:
        time.sleep(POLL_MS / 1000 + 0.5)  # the notifier is idle, between two polls
        delays = []
        for i, sensor in enumerate(sensors):
            sent = time.time()
            sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
            hooks = wait_until(
                lambda p=f"/wake{i}": receiver.delivered(p),
                POLL_MS / 1000 * 2,
                what=f"tamper webhook {i}",
            )
            delays.append(hooks[0]["at"] - sent)
            time.sleep(0.7)
        print(f"event -> webhook with {POLL_MS} ms polling: {[round(d, 3) for d in delays]} s")
        # polling alone would average POLL_MS / 2 per alert
        assert max(delays) < 1.0, delays
    finally:
        for s in sensors:
            s.stop()


def test_a_notification_committed_behind_the_read_cursor_is_still_sent(
    slow_poll: Stack, receiver: Receiver
) -> None:
    """Writers may commit in another order than they took their row numbers (several on
    PostgreSQL): a pending row whose number is below what the notifier has read already
    is found by its periodic full read (`RESCAN_S`), not lost."""
    with slow_poll.api() as api:
        hh = slow_poll.enrol(api, webhook_url=receiver.url("/behind"))
        sensor = VirtualSensor.provisioned(slow_poll.provision(api, hh["household_id"]))
    assert sensor.start()
    try:
        sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
        wait_until(lambda: receiver.delivered("/behind"), 10, what="first webhook")
    finally:
        sensor.stop()
    # a row numbered below every row the notifier has read, as a late committer leaves it
    now_us = int(time.time() * 1e6)
    with sqlite3.connect(slow_poll.settings.database, timeout=15) as db:
        db.execute(
            "INSERT INTO outbox (rowid, notification_id, alert_id, recipient, household_id,"
            " url, body, state, created_us, next_attempt_us)"
            " VALUES (-1, ?, ?, 'resident', ?, ?, ?, 'pending', ?, ?)",
            ("ntf-behind", "alr-behind", hh["household_id"], receiver.url("/behind-late"),
             '{"late": true}', now_us, now_us),
        )  # fmt: skip
    started = time.monotonic()
    wait_until(lambda: receiver.delivered("/behind-late"), RESCAN_S + POLL_MS / 1000 + 5,
               what="the late row's webhook")  # fmt: skip
    assert time.monotonic() - started <= RESCAN_S + POLL_MS / 1000 + 2
