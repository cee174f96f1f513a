"""Provisioning during a stream (issue 10 item 5): a steady stream of door events from a few
sensors while 50 sensors are provisioned, 8 at a time. Prints stored events/s per second
(worst and median second, before and during provisioning); asserts only correctness (every
provisioning answered 201, every event stored exactly once), never a timing.

The same file runs unchanged against an older checkout (it uses only the API, the
simulator and the harness), which is how the README's before/after figures were taken."""

from __future__ import annotations

import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.harness import ROOT, Stack, wait_until

STREAM_SENSORS = 4
RATE_PER_SENSOR = 750  # events/s each: 3,000 events/s in all
PROVISION = 50  # sensors per round
PROVISION_CONCURRENCY = 8
ROUNDS = 3  # rounds of PROVISION, 3 s apart


@pytest.fixture(scope="module")
def lstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("provload"), ANSIM_LOG_LEVEL="WARNING")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _per_second(
    samples: list[tuple[float, int]], start: float, end: float, step: float = 1.0
) -> list[int]:
    """Stored events in each one-second window starting every `step` s in [start, end - 1],
    from (time, count) samples."""
    out = []
    t = start
    while t + 1.0 <= end + 1e-9:
        before = max((c for ts, c in samples if ts <= t), default=0)
        after = max((c for ts, c in samples if ts <= t + 1.0), default=0)
        out.append(after - before)
        t += step
    return out


@pytest.mark.slow
def test_stream_keeps_flowing_while_sensors_are_provisioned(lstack: Stack) -> None:
    with lstack.api() as api:
        hh = lstack.enrol(api)
        hid = hh["household_id"]
        answers = [lstack.provision(api, hid) for _ in range(STREAM_SENSORS)]
    ids = [a["sensor_id"] for a in answers]
    marks = ",".join("?" * len(ids))
    db = sqlite3.connect(lstack.settings.database, timeout=15, check_same_thread=False)
    samples: list[tuple[float, int]] = []
    stop_sampling = threading.Event()

    def stored() -> int:
        (count,) = db.execute(
            f"SELECT COALESCE(SUM(events_stored), 0) FROM sensors WHERE sensor_id IN ({marks})",
            ids,
        ).fetchone()
        return int(count)

    def sample() -> None:
        while not stop_sampling.is_set():
            samples.append((time.monotonic(), stored()))
            time.sleep(0.05)

    # how long a writer waits for SQLite's write lock (what the bridge waits for each batch):
    # BEGIN IMMEDIATE; ROLLBACK every 20 ms, its wait recorded. Less sensitive to the CPU
    # load of a shared machine than the stored rate.
    lock_waits: list[tuple[float, float]] = []
    probe = sqlite3.connect(
        lstack.settings.database, timeout=15, isolation_level=None, check_same_thread=False
    )

    def probe_lock() -> None:
        while not stop_sampling.is_set():
            t0 = time.monotonic()
            probe.execute("BEGIN IMMEDIATE")
            waited = time.monotonic() - t0
            probe.execute("ROLLBACK")
            lock_waits.append((t0, waited))
            time.sleep(0.02)

    # the stream in a process of its own: the provisioning threads here cannot starve it
    publisher = subprocess.Popen(
        [sys.executable, "-m", "tests.stream_publisher", str(RATE_PER_SENSOR)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True,
    )  # fmt: skip
    assert publisher.stdin is not None and publisher.stdout is not None
    publisher.stdin.write(json.dumps(answers))
    publisher.stdin.close()
    assert publisher.stdout.readline().strip() == "ready"
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    prober = threading.Thread(target=probe_lock, daemon=True)
    prober.start()
    time.sleep(3)  # warm-up
    base_start = time.monotonic()
    time.sleep(6)
    # PROVISION_CONCURRENCY operators, each with its own HTTP client made before the clock
    clients = [lstack.api() for _ in range(PROVISION_CONCURRENCY)]
    codes: list[int] = []

    def operator(k: int) -> None:
        for _ in range(k, PROVISION, PROVISION_CONCURRENCY):
            codes.append(clients[k].post(f"/api/v1/households/{hid}/sensors", json={}).status_code)

    rounds: list[tuple[float, float]] = []
    for _ in range(ROUNDS):
        workers = [threading.Thread(target=operator, args=(k,)) for k in range(len(clients))]
        prov_start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        rounds.append((prov_start, time.monotonic()))
        time.sleep(3)
    for c in clients:
        c.close()
    time.sleep(2)
    publisher.send_signal(signal.SIGTERM)
    total = int(publisher.stdout.read().strip().splitlines()[-1])
    publisher.stdout.close()
    assert publisher.wait(90) == 0
    wait_until(lambda: stored() >= total, 60, what="every event stored")
    stop_sampling.set()
    sampler.join(5)
    prober.join(20)
    probe.close()
    final = stored()
    db.close()

    base = _per_second(samples, base_start, rounds[0][0])
    # sliding one-second windows, every 0.25 s, from a round's first request to 1 s after
    # its last answer (a stall shows as a low window, the catch-up after it as a high one)
    base_sliding = _per_second(samples, base_start, rounds[0][0], 0.25)

    def waits_ms(start: float, end: float) -> str:
        ws = sorted(w * 1000 for t, w in lock_waits if start <= t < end)
        if not ws:
            return "write-lock wait: no probe"
        p99 = ws[min(len(ws) - 1, int(len(ws) * 0.99))]
        return f"write-lock wait max {ws[-1]:.0f} ms, p99 {p99:.0f} ms over {len(ws)} probes"

    report = [
        f"\nprovision load: stream {STREAM_SENSORS}×{RATE_PER_SENSOR} = "
        f"{STREAM_SENSORS * RATE_PER_SENSOR} events/s sent; {ROUNDS} rounds of {PROVISION} "
        f"sensors provisioned {PROVISION_CONCURRENCY} at a time",
        f"  before: worst second {min(base_sliding)} stored events/s, median "
        f"{statistics.median(base_sliding):.0f} (whole seconds: {base}); "
        + waits_ms(base_start, rounds[0][0]),
    ]
    for n, (start, end) in enumerate(rounds, 1):
        during = _per_second(samples, start, end + 1.0, 0.25)
        report.append(
            f"  round {n} ({end - start:.1f} s, {PROVISION / (end - start):.0f} sensors/s): "
            f"worst second {min(during)}, median {statistics.median(during):.0f}; "
            f"{waits_ms(start, end)} ({during})"
        )
    print("\n".join(report))
    assert sorted(codes) == [201] * (PROVISION * ROUNDS), codes
    assert final == total  # every event stored, once
