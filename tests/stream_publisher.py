"""A steady stream of door events from provisioned sensors, in a process of its own (so the
test's own threads cannot starve it): reads the provisioning answers as a JSON list on
stdin, publishes `close` events at RATE per sensor per second until SIGTERM, then prints
the number sent."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime

from core.models import EventType
from simulator.device import VirtualSensor


def main() -> None:
    rate = float(sys.argv[1])
    answers = json.loads(sys.stdin.read())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sensors = []
    for answer in answers:
        s = VirtualSensor.provisioned(answer, boot=1)
        s.client.max_inflight_messages_set(1000)
        if not s.start():
            raise SystemExit(f"cannot connect: {s.refused}")
        sensors.append(s)
    print("ready", flush=True)
    sent = 0
    period = 1.0 / (rate * len(sensors))
    last = {}
    nxt = time.monotonic()
    while not stop.is_set():
        i = sent % len(sensors)
        last[i] = sensors[i].publish(EventType.CLOSE, datetime.now(UTC))
        sent += 1
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for info in last.values():
        info.wait_for_publish(60)  # every event acknowledged by the broker
    for s in sensors:
        s.client.disconnect()
        s.client.loop_stop()
    print(sent, flush=True)


if __name__ == "__main__":
    main()
