"""Many virtual sensors on one asyncio event loop.

A thread per paho client does not scale to 20,000 sensors, so every client's socket is
registered with the running loop (`add_reader` / `add_writer`, as `broker_bridge.mqtt_loop`
does for the bridge): paho's `loop_read` / `loop_write` run when the socket is ready, and
one task calls `loop_misc` (keepalive pings) for all clients. Each sensor connects with
its own credentials (username = client id = `sensor_id`), sets a retained Last Will
`offline` and publishes a retained `online` on every (re)connect.

Faults that concern the connection:

- `drop(sensor)` closes the TCP connection without an MQTT DISCONNECT, as a power cut or
  a dead link does, so the broker publishes the Last Will;
- `reconnect(sensor)` opens a new connection (the retained `online` follows the CONNACK);
  messages published meanwhile are queued by paho and sent after it.

A connection lost unexpectedly is re-established with a back-off, unless it was dropped
on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.wire import status_topic
from simulator.progress import Counters
from simulator.transport import use_tls

log = logging.getLogger("ansim.simulator.fleet")

LATENCY_SAMPLES_MAX = 200_000


@dataclass(frozen=True, slots=True)
class SensorCredentials:
    household_key: str
    household_id: str
    sensor_id: str
    host: str
    port: int
    password: str
    tls: bool = False
    ca_pem: str | None = None


class FleetSensor:
    """One sensor's paho client, driven by the fleet's event loop."""

    def __init__(self, fleet: Fleet, creds: SensorCredentials) -> None:
        self.fleet = fleet
        self.creds = creds
        self.sensor_id = creds.sensor_id
        self.connected = False
        self.down = False  # dropped on purpose: do not reconnect by itself
        self.refused: str | None = None
        self.connects = 0
        self._connack: asyncio.Future[bool] | None = None
        self._sent_at: dict[int, float] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._dropped_at: float | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.sensor_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.sensor_id, creds.password)
        use_tls(client, creds.tls, creds.ca_pem)
        client.will_set(status_topic(self.sensor_id), b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client

    # --- socket registration on the loop ---------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.fleet.loop.add_reader(sock, self._read)

    def _read(self) -> None:
        self.client.loop_read(16)
        # TLS may hold decrypted bytes the socket no longer signals: drain them
        sock = self.client.socket()
        while isinstance(sock, ssl.SSLSocket) and sock.pending():
            if self.client.loop_read(16) != mqtt.MQTT_ERR_SUCCESS:
                break
            sock = self.client.socket()

    def _on_socket_close(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.fleet.loop.remove_reader(sock)
        self.fleet.loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.fleet.loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.fleet.loop.remove_writer(sock)

    # --- paho callbacks (run inside loop_read / loop_write) --------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        counters = self.fleet.counters
        if getattr(rc, "is_failure", False):
            self.refused = str(rc)
            self.down = True  # wrong credentials do not get better by retrying
            counters.connect_refused += 1
            self._resolve(False)
            return
        self.refused = None
        self.connected = True
        self.connects += 1
        counters.connected += 1
        self.publish(status_topic(self.sensor_id), b"online", retain=True)
        self._resolve(True)

    def _on_disconnect(self, *_a: object) -> None:
        if self.connected:
            self.connected = False
            self.fleet.counters.connected -= 1
        self._resolve(False)
        if not self.down and not self.fleet.closing:
            self._schedule_reconnect()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        self.fleet.counters.acked += 1
        t0 = self._sent_at.pop(mid, None)
        if t0 is not None and len(self.fleet.ack_latencies) < LATENCY_SAMPLES_MAX:
            self.fleet.ack_latencies.append(time.monotonic() - t0)

    def _resolve(self, ok: bool) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(ok)

    # --- actions ---------------------------------------------------------------------

    def start_connect(self) -> asyncio.Future[bool]:
        """Open the TCP connection and send CONNECT; the future resolves on CONNACK.

        Not sooner than `Fleet.reconnect_gap_s` (wall time) after a drop: a new session
        under the same client id taking over before the broker has seen the old socket
        close could have the Last Will `offline` land after the new retained `online`.
        """
        self._connack = self.fleet.loop.create_future()
        self.down = False
        wait = 0.0
        if self._dropped_at is not None:
            wait = self._dropped_at + self.fleet.reconnect_gap_s - time.monotonic()
        if wait > 0:
            self.fleet.loop.call_later(wait, self._connect_now)
        else:
            self._connect_now()
        return self._connack

    def _connect_now(self) -> None:
        if self.connected or self.fleet.closing:
            return
        try:
            if self.connects == 0 and self.client.socket() is None:
                self.client.connect(self.creds.host, self.creds.port, keepalive=60)
            else:
                self.client.reconnect()
        except OSError as exc:
            log.warning("connect failed", extra={"sensor_id": self.sensor_id, "error": str(exc)})
            self._resolve(False)
            if not self.fleet.closing:
                self._schedule_reconnect()

    def _schedule_reconnect(self, delay_s: float = 1.0) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return

        async def later() -> None:
            await asyncio.sleep(delay_s)
            if not self.connected and not self.down and not self.fleet.closing:
                self.start_connect()

        self._reconnect_task = self.fleet.loop.create_task(later())

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        counters = self.fleet.counters
        counters.published += 1
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            counters.publish_errors += 1
        else:
            self._sent_at[info.mid] = time.monotonic()
        return info

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT: the broker publishes the Last Will."""
        self.down = True
        self._dropped_at = time.monotonic()
        if self.connected:
            self.connected = False
            self.fleet.counters.connected -= 1
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # paho notices the closed socket on its next read and cleans up

    @property
    def pending(self) -> int:
        return len(self._sent_at)


class Fleet:
    """The sensors of one run, on the running asyncio loop."""

    def __init__(
        self, counters: Counters, misc_every_s: float = 2.0, reconnect_gap_s: float = 0.25
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.reconnect_gap_s = reconnect_gap_s
        self.counters = counters
        self.sensors: dict[str, FleetSensor] = {}  # by household key
        self.closing = False
        self.ack_latencies: list[float] = []
        self._misc_every_s = misc_every_s
        self._misc_task = self.loop.create_task(self._misc_loop())

    def add(self, creds: SensorCredentials) -> FleetSensor:
        sensor = FleetSensor(self, creds)
        self.sensors[creds.household_key] = sensor
        return sensor

    async def connect_all(
        self,
        batch: int = 250,
        timeout_s: float = 30.0,
        on_batch: Any = None,
    ) -> list[FleetSensor]:
        """Connect in batches (each waits for its CONNACKs); returns those refused or
        timed out."""
        failed: list[FleetSensor] = []
        todo = list(self.sensors.values())
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            futures = [s.start_connect() for s in chunk]
            _done, _pending = await asyncio.wait(futures, timeout=timeout_s)
            for s, f in zip(chunk, futures, strict=True):
                if not f.done() or not f.result():
                    failed.append(s)
            if on_batch is not None:
                on_batch(i + len(chunk))
        return failed

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(self._misc_every_s)
            for s in list(self.sensors.values()):
                if s.client.socket() is not None:
                    s.client.loop_misc()

    def pending_acks(self) -> int:
        """Messages not yet acknowledged, on sensors that are meant to be connected."""
        return sum(s.pending for s in self.sensors.values() if not s.down)

    async def wait_acked(self, timeout_s: float, tick: Any = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pending_acks() == 0:
                return True
            if tick is not None:
                tick()
            await asyncio.sleep(0.1)
        return self.pending_acks() == 0

    async def close(self, graceful: bool = True, timeout_s: float = 10.0) -> None:
        """Say `offline` (retained) like a sensor switched off properly, then disconnect."""
        self.closing = True
        live: Iterable[FleetSensor] = [s for s in self.sensors.values() if s.connected]
        if graceful:
            for s in live:
                s.publish(status_topic(s.sensor_id), b"offline", retain=True)
            await self.wait_acked(timeout_s)
        for s in self.sensors.values():
            s.down = True
            if s.client.socket() is not None:
                s.client.disconnect()
        await asyncio.sleep(0.2)
        self._misc_task.cancel()
        for s in self.sensors.values():
            sock = s.client.socket()
            if sock is not None:
                s._on_socket_close(s.client, None, sock)
                if isinstance(sock, socket.socket):
                    sock.close()
