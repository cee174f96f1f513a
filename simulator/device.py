"""A virtual door sensor: its own broker credentials, `boot`/`seq`, heartbeats, a retained
status with a Last Will of `offline` — the wire contract as hardware speaks it."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.models import EventType
from core.wire import encode_event, event_topic, status_topic
from simulator.transport import use_tls


class VirtualSensor:
    def __init__(
        self,
        sensor_id: str,
        host: str,
        port: int,
        password: str,
        boot: int = 0,
        battery: float = 100.0,
        rssi: int = -60,
        tls: bool = False,
        ca_pem: str | None = None,
    ) -> None:
        self.sensor_id = sensor_id
        self.host, self.port = host, port
        self.boot = boot
        self.seq = 0
        self.battery = battery
        self.rssi = rssi
        self.connected = threading.Event()
        self.refused: str | None = None
        self.tls, self.ca_pem = tls, ca_pem
        self.client = self._new_client(password)

    @classmethod
    def provisioned(cls, answer: dict[str, Any], **kw: Any) -> VirtualSensor:
        """A sensor set up from the API's provisioning answer, as hardware is: its host,
        port (TLS), CA and password."""
        m = answer["mqtt"]
        return cls(answer["sensor_id"], m["host"], int(m["port"]), m["password"],
                   tls=bool(m.get("tls")), ca_pem=m.get("ca_pem"), **kw)  # fmt: skip

    def _new_client(self, password: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.sensor_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.sensor_id, password)
        use_tls(client, self.tls, self.ca_pem)
        client.will_set(status_topic(self.sensor_id), b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        if getattr(rc, "is_failure", False):
            self.refused = str(rc)
            return
        client.publish(status_topic(self.sensor_id), b"online", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, *_a: object) -> None:
        self.connected.clear()

    def start(self, timeout_s: float = 10.0) -> bool:
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()
        return self.connected.wait(timeout_s)

    def power_on(self) -> None:
        """A reboot: `boot` goes up by one and `seq` starts again."""
        self.boot += 1
        self.seq = 0

    def publish(self, type_: EventType | str, ts: datetime) -> mqtt.MQTTMessageInfo:
        payload = encode_event(
            self.boot, self.seq, ts, type_, battery=int(self.battery), rssi=self.rssi
        )
        self.seq += 1
        return self.client.publish(event_topic(self.sensor_id), payload, qos=1)

    def publish_raw(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def stop(self, graceful: bool = True) -> None:
        if graceful and self.connected.is_set():
            info = self.client.publish(status_topic(self.sensor_id), b"offline", qos=1, retain=True)
            info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
