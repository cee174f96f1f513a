"""Ingest benchmark (run by hand; prints its figures).

    .venv/bin/python bench/ingest.py [--events 200000] [--prefill 20000000]

1. A real stack (mosquitto from mosquitto.conf, SQLite file, API, bridge) whose event
   table already holds `--prefill` rows (20 million by default) spread over 20,000
   sensors, the benchmark's own sensors among them. The prefilled data directory is
   cached (`--cache`), so later runs only copy it.
2. Throughput, as a ratio against a baseline measured in the same run: `--events` QoS 1
   messages are published by the sensors (with their own credentials) while both the
   bridge and a bare paho subscriber that only counts are offline but hold persistent
   sessions, so the broker queues the same messages for both. Then the baseline drains
   its queue (messages/s), then the bridge drains its own (events stored and committed
   per second, acknowledged after commit). Ratio = bridge / baseline.
3. Latency (`bench/latency.py`): with the bridge, notifier and API running, the C load
   generator (`bench/loadgen.c`: `--lg-sensors` connections over TLS, ts stamped at send,
   its own send lag reported) offers 50 % and 90 % of the capacity measured in step 2,
   then 50 % with a 150 % burst of 10 s; tamper probes from their own households measure
   publish → webhook end to end, and every hop's p50/p99 is read from the services'
   histograms (see bench/latency.py).
4. The bridge's peak RSS during all of it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing as mp
import shutil
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import latency  # noqa: E402
from core.broker.dynsec import DynsecAdmin  # noqa: E402
from core.broker.mosquitto import BRIDGE_ROLE  # noqa: E402
from core.timeutil import to_us  # noqa: E402
from core.wire import encode_event, event_topic  # noqa: E402
from tests.harness import Stack, wait_until  # noqa: E402

BENCH_SENSORS = 200
LAYOUT = "household-per-sensor"
PREFILL_SENSORS = 20_000
BASELINE_USER = "bench-baseline"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- publishers (separate processes, so they do not share the bridge's GIL) -----------
def _publisher(
    port: int,
    sensors: list[tuple[str, str]],
    boot: int,
    per_sensor: int,
    rate: float,
    acked: mp.Value,
    window: mp.Value,
) -> None:
    clients = []
    done = threading.Semaphore(0)
    for sid, pw in sensors:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=sid, protocol=mqtt.MQTTv5)
        c.username_pw_set(sid, pw)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)

        def on_publish(*_a: object) -> None:
            with acked.get_lock():
                acked.value += 1
            done.release()

        c.on_publish = on_publish
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append((sid, c))
    total = per_sensor * len(clients)
    start = time.perf_counter()
    sent = 0
    for seq in range(per_sensor):
        for sid, c in clients:
            ts = datetime.now(UTC)
            c.publish(
                event_topic(sid), encode_event(boot, seq, ts, "open" if seq % 2 else "close"), qos=1
            )
            sent += 1
            if rate:
                ahead = sent / rate - (time.perf_counter() - start)
                if ahead > 0.002:
                    time.sleep(ahead)
    with window.get_lock():
        window.value = max(window.value, time.perf_counter() - start)
    for _ in range(total):
        done.acquire(timeout=120)
    for _sid, c in clients:
        c.disconnect()
        c.loop_stop()


def publish(
    port: int,
    sensors: list[tuple[str, str]],
    boot: int,
    per_sensor: int,
    rate: float = 0,
    procs: int = 2,
) -> float:
    """Publish from `procs` processes; returns the longest publishing window (s)."""
    acked = mp.Value("q", 0)
    window = mp.Value("d", 0.0)
    groups = [sensors[i::procs] for i in range(procs)]
    workers = [
        mp.Process(
            target=_publisher,
            args=(port, g, boot, per_sensor, rate / procs if rate else 0, acked, window),
        )
        for g in groups
    ]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    total = per_sensor * len(sensors)
    while any(w.is_alive() for w in workers):
        time.sleep(1)
        say(f"  published and acked by the broker {acked.value:,}/{total:,}")
    say(f"  done in {time.perf_counter() - t0:.1f} s")
    return float(window.value)


# --- baseline: a bare paho subscriber that only counts -------------------------------
class Counter:
    def __init__(self, port: int, password: str) -> None:
        self.n = 0
        self.first = 0.0
        self.last = 0.0
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=BASELINE_USER, protocol=mqtt.MQTTv5
        )
        self.c.username_pw_set(BASELINE_USER, password)
        self.c.on_message = self.on_message
        self.port = port

    def on_message(self, *_a: object) -> None:
        if self.n == 0:
            self.first = time.perf_counter()
        self.n += 1
        self.last = time.perf_counter()

    def connect(self, subscribe: bool) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 1000
        self.c.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        if subscribe:
            self.c.subscribe("ansim/v1/sensors/+/event", qos=1)
        self.c.loop_start()

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# --- prefill ----------------------------------------------------------------------------
def prefill(db: Path, rows: int, bench_pks: list[int], hh: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = to_us(datetime.now(UTC))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO sensors (sensor_id, household_id, mqtt_username, password_hash, created_us,"
        " retired_us, status) VALUES (?,?,?,'x',?,?,'retired')",
        [
            (f"pf-{i:05d}", hh, f"pf-{i:05d}", now, now)
            for i in range(PREFILL_SENSORS - len(bench_pks))
        ],
    )
    conn.execute("COMMIT")
    pks = [r[0] for r in conn.execute("SELECT sensor_pk FROM sensors ORDER BY sensor_pk")]
    per = rows // len(pks)
    start_us = now - 14 * 86_400_000_000
    t0 = time.perf_counter()
    for i, pk in enumerate(pks):
        if i % 200 == 0:
            conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < ?)"
            " INSERT INTO events (sensor_pk, boot, seq, event_us, device_us, offset_min,"
            " received_us,"
            " type, battery, rssi, skewed) SELECT ?, 0, k, ? + k * 1200000000, ? + k * 1200000000,"
            " 540, ? + k * 1200000000, CASE k % 2 WHEN 0 THEN 'open' ELSE 'close' END, 80, -60, 0"
            " FROM n",
            (per, pk, start_us, start_us, start_us),
        )
        if i % 200 == 199 or i == len(pks) - 1:  # progress every 200 sensors
            conn.execute("COMMIT")
            done = (i + 1) * per
            rate = done / (time.perf_counter() - t0)
            if i % 2000 == 1999 or i == len(pks) - 1:
                say(f"  prefill {done:,}/{per * len(pks):,} rows ({rate:,.0f} rows/s)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build_or_copy(cache: Path, data: Path, rows: int) -> list[tuple[str, str]]:
    marker = cache / "bench.json"
    if not marker.exists():
        say(f"building the prefilled data directory in {cache} (once)")
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        stack = Stack(cache)
        stack.start()
        sensors = []
        with stack.api() as api:
            # one sensor per household, as homes have (all 200 in one household made
            # every batch load and judge a 200-sensor home: a worst case no ward has)
            for i in range(BENCH_SENSORS):
                hh = stack.enrol(api, name=f"bench {i}")
                prov = stack.provision(api, hh["household_id"], sensor_id=f"bench-{i:04d}")
                sensors.append((prov["sensor_id"], prov["mqtt"]["password"]))
            # the prefill's retired sensors live in a household of their own
            retired_hh = stack.enrol(api, name="retired sensors")["household_id"]
        stack.stop()
        pks = list(range(1, BENCH_SENSORS + 1))
        prefill(stack.settings.database, rows, pks, retired_hh)
        for log in cache.glob("*.log"):
            log.unlink()
        marker.write_text(json.dumps({"rows": rows, "sensors": sensors, "layout": LAYOUT}))
    meta = json.loads(marker.read_text())
    if meta["rows"] != rows or meta.get("layout") != LAYOUT:
        raise SystemExit(f"cache {cache} holds another prefill; use another --cache")
    say(f"copying the prefilled data directory ({_size(cache) / 1e9:.1f} GB)")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(cache, data)
    return [tuple(s) for s in meta["sensors"]]  # type: ignore[misc]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--prefill", type=int, default=20_000_000)
    p.add_argument("--seconds", type=float, default=30, help="per latency phase")
    p.add_argument("--lg-sensors", type=int, default=20, help="load generator connections")
    p.add_argument("--cache", type=Path, default=Path("/tmp/ansim-bench-cache-v2"))
    p.add_argument("--data", type=Path, default=Path("/tmp/ansim-bench-run"))
    args = p.parse_args()

    sensors = build_or_copy(
        args.cache.with_name(f"{args.cache.name}-{args.prefill}"), args.data, args.prefill
    )
    stack = Stack(args.data)
    atexit.register(stack.stop)  # also when the run fails half-way: no stray broker left
    stack.start_broker()
    assert stack.creds is not None
    admin = DynsecAdmin(
        "127.0.0.1", stack.mqtt_port, stack.creds.admin_username, stack.creds.admin_password
    )
    admin.start()
    admin.call(
        [{"command": "createClient", "username": BASELINE_USER, "password": "bench-baseline-pw",
          "roles": [{"rolename": BRIDGE_ROLE}]}],
        tolerate=("already exists",),
    )  # fmt: skip
    admin.stop()
    base_rows = int(stack.db_scalar("SELECT COUNT(*) FROM events"))
    say(f"events already in the table: {base_rows:,}")

    # the bridge's session subscribes once, then goes away (its queue fills)
    stack.start_bridge()
    wait_until(lambda: "connected to broker" in (args.data / "bridge.log").read_text(), 30)
    stack.kill("bridge", 15)
    counter = Counter(stack.mqtt_port, "bench-baseline-pw")
    counter.connect(subscribe=True)
    time.sleep(0.5)
    counter.stop()

    per_sensor = args.events // len(sensors)
    n = per_sensor * len(sensors)
    say(
        f"publishing {n:,} QoS 1 events from {len(sensors)} sensors while both subscribers are away"
    )
    publish(stack.mqtt_port, sensors, boot=1000 + int(time.time()) % 100000, per_sensor=per_sensor)

    say("baseline: a bare paho subscriber drains its queue, counting only")
    counter = Counter(stack.mqtt_port, "bench-baseline-pw")
    counter.connect(subscribe=False)
    wait_until(lambda: counter.n >= n, 300, 0.2, "baseline drain")
    counter.stop()
    baseline = (n - 1) / (counter.last - counter.first)
    say(f"baseline {baseline:,.0f} messages/s")

    say("bridge: drains the same messages, storing and acknowledging after commit")
    stack.start_bridge()
    proc = psutil.Process(stack.procs["bridge"].pid)
    peak_rss = 0
    first_t = None
    first_done = 0
    last_say = 0.0
    # progress from the bridge's own counter, not COUNT(*): over 20 M rows each count
    # takes seconds and holds a read snapshot (the "bursts with 4–5 s pauses" were this
    # bench waiting on its own COUNT(*), and the checkpoint it kept from finishing)
    metrics_url = f"http://127.0.0.1:{stack.settings.bridge_metrics_port}/metrics"

    def stored_so_far() -> int:
        try:
            text = httpx.get(metrics_url, timeout=2).text
        except httpx.HTTPError:
            return 0
        for line in text.splitlines():
            if line.startswith('ansim_bridge_messages_total{outcome="stored"}'):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    while True:
        done = stored_so_far()
        peak_rss = max(peak_rss, proc.memory_info().rss)
        if first_t is None and done > 0:
            first_t, first_done = time.perf_counter(), done
        if time.perf_counter() - last_say > 1:
            last_say = time.perf_counter()
            say(f"  stored {done:,}/{n:,}")
        if done >= n:
            done_t = time.perf_counter()
            break
        time.sleep(0.25)  # a scrape renders every metric in the bridge: not too often
    assert first_t is not None
    stored_rate = (n - first_done) / (done_t - first_t)
    rows = int(stack.db_scalar("SELECT COUNT(*) FROM events"))
    assert rows == base_rows + n, f"{rows - base_rows:,} new rows for {n:,} events"
    say(f"bridge {stored_rate:,.0f} events/s stored")

    stop_rss = threading.Event()

    def watch_rss() -> None:
        nonlocal peak_rss
        while not stop_rss.wait(0.2):
            peak_rss = max(peak_rss, proc.memory_info().rss)

    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()

    print()
    print("=" * 64)
    print(f"events in table before the run     {base_rows:>14,}")
    print(f"baseline (bare paho, counting)     {baseline:>14,.0f} msg/s")
    print(f"bridge (stored, ack after commit)  {stored_rate:>14,.0f} events/s")
    print(f"ratio bridge / baseline            {stored_rate / baseline:>14.2f}   (target >= 0.25)")
    print("=" * 64, flush=True)

    say("latency: offered load as fractions of the drain capacity just measured")
    latency.run_all(stack, sensors[: args.lg_sensors], stored_rate, args.seconds, args.data)
    stop_rss.set()
    stack.stop()
    print(f"bridge peak RSS                    {peak_rss / 2**20:>14.0f} MB   (target < 200 MB)")


if __name__ == "__main__":
    main()
