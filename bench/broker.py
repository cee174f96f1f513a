"""Broker benchmark: the cost of TLS for sensors, and of the 1 s autosave (run by hand).

    .venv/bin/python bench/broker.py [--messages 100000] [--sensors 50] [--crash-rate 2000]

Every figure is a ratio against a baseline measured in the same run (machines differ by
2.5x in absolute speed); absolute numbers are printed only to read the ratios by.

Sensors are played by `bench/loadgen.c` (libmosquitto, one connection per sensor, one
pacing thread), so the figures are the broker's, not a Python publisher's.

1. TLS: sensors publish `--messages` QoS 1 events over plain loopback MQTT (baseline),
   then the same number over the TLS listener with the provisioned CA (the bridge's
   session is offline: the broker queues them). Throughput = messages acknowledged to the
   publishers per second, first send to last PUBACK. Ratio = TLS / plain.
2. Autosave with a backlog: the subscriber's persistent session is offline, so the
   broker queues everything (as it does for a stopped bridge). `--messages` are published
   (the backlog), then the subscriber drains it. Baseline: `autosave_interval 30` (wave 1);
   measured: 1 s (the default now). Ratios of publish and drain throughput.
3. Crash window: subscriber offline, publishers send at `--crash-rate` msg/s for
   `--crash-seconds`, then mosquitto gets SIGKILL right after the last acknowledgement;
   it is restarted on the same state and the subscriber drains what survived. Lost =
   acknowledged - received; window = lost / rate, for autosave 30 and 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from core.broker.dynsec import DynsecAdmin  # noqa: E402
from core.broker.mosquitto import BRIDGE_ROLE  # noqa: E402
from core.wire import SENSORS_FILTER  # noqa: E402
from tests.harness import Stack, wait_until  # noqa: E402

COUNTER_USER = "bench-counter"
COUNTER_PW = "bench-counter-pw"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def publish(
    port: int,
    sensors: list[tuple[str, str]],
    per_sensor: int,
    ca_pem: str | None = None,
    rate: float = 0,
) -> tuple[int, float]:
    """Publish with the C load generator (`bench/loadgen.c`), as fast as the broker takes
    them when `rate` is 0; (messages acknowledged, seconds)."""
    total = per_sensor * len(sensors)
    offered = rate or 2_000_000.0
    with tempfile.TemporaryDirectory(prefix="ansim-bench-lg-") as tmp:
        cafile = None
        if ca_pem is not None:
            cafile = Path(tmp) / "ca.pem"
            cafile.write_text(ca_pem)
        result = loadgen.run(port, sensors, offered, total / offered, 1, Path(tmp), cafile)
    acked = [m for m in result.sent if m.puback_us]
    say(f"    {result.summary.splitlines()[0]}")
    # first send to last PUBACK, as the generator saw them
    secs = (max(m.puback_us for m in acked) - min(m.send_us for m in result.sent)) / 1e6
    return len(acked), secs


class Counter:
    """A subscriber with a persistent session (the bridge's role) that only counts."""

    def __init__(self, port: int) -> None:
        self.n = 0
        self.last = 0.0
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=COUNTER_USER, protocol=mqtt.MQTTv5
        )
        self.c.username_pw_set(COUNTER_USER, COUNTER_PW)
        self.c.on_message = self._on_message
        self.port = port

    def _on_message(self, *_a: object) -> None:
        self.n += 1
        self.last = time.perf_counter()

    def start(self, subscribe: bool = False) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 1000
        self.c.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        if subscribe:
            self.c.subscribe(SENSORS_FILTER, qos=1)
        self.c.loop_start()

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def broker(autosave_s: int, n_sensors: int) -> tuple[Stack, list[tuple[str, str]], str]:
    """A fresh broker with `n_sensors` sensor accounts and the counter's session."""
    stack = Stack(Path(tempfile.mkdtemp(prefix="ansim-bench-broker-")),
                  ANSIM_MQTT_AUTOSAVE_S=str(autosave_s))  # fmt: skip
    stack.start_broker()
    assert stack.creds is not None and stack.broker.tls is not None
    admin = DynsecAdmin(
        "127.0.0.1", stack.mqtt_port, stack.creds.admin_username, stack.creds.admin_password
    )
    admin.start()
    admin.call(
        [{"command": "createClient", "username": COUNTER_USER, "password": COUNTER_PW,
          "roles": [{"rolename": BRIDGE_ROLE}]}],
    )  # fmt: skip
    sensors = [(f"s-bench{i:05d}", f"pw-bench-{i:05d}") for i in range(n_sensors)]

    async def create() -> None:
        for sid, pw in sensors:
            await admin.create_sensor(sid, pw)

    asyncio.run(create())
    admin.stop()
    counter = Counter(stack.mqtt_port)
    counter.start(subscribe=True)  # the session and its subscription exist from now on
    time.sleep(0.3)
    counter.stop()
    assert stack.broker.proc is not None
    stack.broker.proc.send_signal(signal.SIGUSR1)  # saved now, as a long-running one is
    time.sleep(0.5)
    ca = stack.broker.tls.ca_pem()
    assert ca is not None
    return stack, sensors, ca


def tls_cost(messages: int, n_sensors: int) -> float:
    """Publish throughput (sent → PUBACK) over plain loopback and over TLS, the bridge's
    session offline so the broker only queues: what TLS costs the sensors' side."""
    stack, sensors, ca = broker(1, n_sensors)
    per = messages // n_sensors
    rates = {}
    try:
        for label, port, ca_pem in (
            ("plain loopback", stack.mqtt_port, None),
            ("TLS", stack.settings.mqtt_tls_port, ca),
        ):
            say(f"  {label}: {per * n_sensors:,} messages")
            n, secs = publish(port, sensors, per, ca_pem=ca_pem)
            rates[label] = n / secs
            say(f"    {rates[label]:,.0f} msg/s published and acknowledged")
    finally:
        stack.stop_broker()
    return rates["TLS"] / rates["plain loopback"]


def backlog(autosave_s: int, messages: int, n_sensors: int) -> tuple[float, float]:
    stack, sensors, _ca = broker(autosave_s, n_sensors)
    per = messages // n_sensors
    try:
        say(f"  autosave {autosave_s} s: {per * n_sensors:,} messages into an offline session")
        n, secs = publish(stack.mqtt_port, sensors, per)
        pub = n / secs
        counter = Counter(stack.mqtt_port)
        t0 = time.perf_counter()
        counter.start()
        wait_until(lambda: counter.n >= n, 600, 0.2, "backlog drained")
        drain = n / (counter.last - t0)
        counter.stop()
        say(f"    publish {pub:,.0f} msg/s, drain {drain:,.0f} msg/s")
        return pub, drain
    finally:
        stack.stop_broker()


def crash(autosave_s: int, rate: float, seconds: float, n_sensors: int) -> tuple[int, int]:
    stack, sensors, _ca = broker(autosave_s, n_sensors)
    per = max(1, int(rate * seconds) // n_sensors)
    try:
        say(
            f"  autosave {autosave_s} s: {per * n_sensors:,} messages at {rate:,.0f}/s, "
            "then kill -9"
        )
        acked, _ = publish(stack.mqtt_port, sensors, per, rate=rate)
        assert stack.broker.proc is not None
        stack.broker.proc.send_signal(signal.SIGKILL)
        stack.broker.proc.wait()
        stack.broker.start(log_file=stack.data_dir / "mosquitto.log", bootstrap=False)
        counter = Counter(stack.mqtt_port)
        counter.start()
        time.sleep(1.0)
        last = -1
        while counter.n != last:  # until nothing more arrives for 1 s
            last = counter.n
            time.sleep(1.0)
        counter.stop()
        say(f"    acknowledged {acked:,}, survived the crash {counter.n:,}")
        return acked, counter.n
    finally:
        stack.stop_broker()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--sensors", type=int, default=50)
    p.add_argument("--crash-rate", type=float, default=2000)
    p.add_argument("--crash-seconds", type=float, default=5)
    args = p.parse_args()
    loadgen.binary()  # built before anything is timed

    say("1/3 the cost of TLS for sensors")
    tls_ratio = tls_cost(args.messages, args.sensors)
    say("2/3 autosave with a backlog")
    pub30, drain30 = backlog(30, args.messages, args.sensors)
    pub1, drain1 = backlog(1, args.messages, args.sensors)
    say("3/3 broker crash window")
    windows = {}
    for autosave in (30, 1):
        acked, survived = crash(autosave, args.crash_rate, args.crash_seconds, args.sensors)
        windows[autosave] = (acked, acked - survived)

    print()
    print(f"TLS / plain loopback throughput:            {tls_ratio:.2f}")
    print(f"autosave 1 s / 30 s, publishing a backlog:  {pub1 / pub30:.2f}")
    print(f"autosave 1 s / 30 s, draining the backlog:  {drain1 / drain30:.2f}")
    for autosave, (acked, lost) in windows.items():
        print(
            f"kill -9 of the broker, autosave {autosave:>2} s: lost {lost:,} of {acked:,} "
            f"acknowledged = {lost / args.crash_rate:.2f} s of messages at "
            f"{args.crash_rate:,.0f}/s"
        )


if __name__ == "__main__":
    main()
