"""Every hop of the bridge is a Prometheus histogram, counted per message (real stack)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from core.models import EventType
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until

HOPS = (
    "ansim_bridge_receive_latency_seconds",
    "ansim_bridge_queue_wait_seconds",
    "ansim_bridge_batch_commit_seconds",
    "ansim_bridge_ack_delay_seconds",
    "ansim_bridge_commit_latency_seconds",
)


def _counts(stack: Stack) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{stack.settings.bridge_metrics_port}/metrics").text
    out = {}
    for line in text.splitlines():
        for hop in HOPS:
            if line.startswith(f"{hop}_count"):
                out[hop] = float(line.rsplit(" ", 1)[1])
    out["oldest"] = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ansim_bridge_oldest_pending_seconds ")
    )
    return out


def test_each_hop_is_measured_per_message(stack: Stack) -> None:
    before = _counts(stack)
    with stack.api() as api:
        hh = stack.enrol(api)
        sensor = VirtualSensor.provisioned(stack.provision(api, hh["household_id"]), boot=1)
    assert sensor.start()
    try:
        for i in range(5):
            sensor.publish(EventType.OPEN if i % 2 else EventType.CLOSE, datetime.now(UTC))
        after = wait_until(
            lambda: (
                (c := _counts(stack))["ansim_bridge_commit_latency_seconds"]
                >= before.get("ansim_bridge_commit_latency_seconds", 0) + 5
                and c
            ),
            10,
            what="five events committed",
        )
    finally:
        sensor.stop()
    for hop in HOPS:
        assert after[hop] - before.get(hop, 0) >= 5, hop
    assert after["oldest"] == 0  # nothing left unacknowledged
