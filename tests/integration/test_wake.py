"""The notifier is woken by the commit that adds outbox rows, not by its next poll: with
polling slowed to 5 s, a tamper alert's webhook still arrives well under a second after
the event (real broker, bridge, notifier and receiver)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.models import EventType
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
