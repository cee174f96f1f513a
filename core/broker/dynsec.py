"""Administration of the dynamic-security plugin through its control topic.

One MQTT connection as the admin user; each call publishes a list of commands to
`$CONTROL/dynamic-security/v1` and waits for the matching response.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
ALREADY_EXISTS = ("already exists",)


class DynsecError(Exception):
    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error


class BrokerUnavailable(Exception):
    """The broker could not be reached or did not answer in time."""


def sensor_role(sensor_id: str) -> str:
    return f"sensor-{sensor_id}"


def sensor_acls(sensor_id: str) -> list[dict[str, Any]]:
    return [
        {
            "acltype": "publishClientSend",
            "topic": f"ansim/v1/sensors/{sensor_id}/#",
            "allow": True,
            "priority": 0,
        }
    ]


class DynsecAdmin:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        timeout_s: float = 10.0,
        client_id: str | None = None,  # default: the username; a second process needs its own
    ) -> None:
        self._host, self._port = host, port
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or username,
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 5)

    # lifecycle --------------------------------------------------------------
    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(self._timeout):
            self.stop()
            raise BrokerUnavailable(f"no answer from the broker at {self._host}:{self._port}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)
        self._connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        if not responses:
            return
        key = str(responses[0].get("correlationData", ""))
        with self._lock:
            waiter = self._pending.get(key)
        if waiter is not None:
            waiter[1].extend(responses)
            waiter[0].set()

    # commands ---------------------------------------------------------------
    def call(
        self, commands: list[dict[str, Any]], tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Run commands in order; raise DynsecError on the first error not tolerated."""
        if not self._connected.wait(self._timeout):
            raise BrokerUnavailable("the broker connection is down")
        key = uuid.uuid4().hex
        for i, command in enumerate(commands):
            command["correlationData"] = key if i == 0 else f"{key}-{i}"
        event = threading.Event()
        responses: list[dict[str, Any]] = []
        with self._lock:
            self._pending[key] = (event, responses)
        try:
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable(f"publish to the control topic failed: {info.rc}")
            if not event.wait(self._timeout):
                raise BrokerUnavailable("the broker did not answer the control command in time")
        finally:
            with self._lock:
                self._pending.pop(key, None)
        for response in responses:
            error = response.get("error")
            if error and not any(t in str(error).lower() for t in tolerate):
                raise DynsecError(str(response.get("command")), str(error))
        return responses

    async def acall(
        self, commands: list[dict[str, Any]], tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.call, commands, tolerate)

    # sensor credentials -----------------------------------------------------
    async def create_sensor(self, sensor_id: str, password: str) -> None:
        """Create the sensor's role and client. Idempotent for our own sensors: when the
        client already exists with the sensor's role (an earlier attempt got as far as the
        broker before a failure), its password is set again. A client of that name without
        the role is someone else's (a service account): DynsecError 'already exists'."""
        role = sensor_role(sensor_id)
        responses = await self.acall(
            [
                {"command": "createRole", "rolename": role, "acls": sensor_acls(sensor_id)},
                {
                    "command": "createClient",
                    "username": sensor_id,
                    "password": password,
                    "roles": [{"rolename": role, "priority": 0}],
                },
            ],
            tolerate=ALREADY_EXISTS,  # one round trip; an existing client is looked at below
        )
        client_exists = any(
            r.get("command") == "createClient" and r.get("error") for r in responses
        )
        if not client_exists:
            return
        if role not in await self.client_roles(sensor_id):
            raise DynsecError("createClient", "Client already exists")
        await self.acall(
            [{"command": "setClientPassword", "username": sensor_id, "password": password}]
        )

    async def client_roles(self, username: str) -> list[str]:
        """The roles of a broker client ([] when there is no such client)."""
        responses = await self.acall(
            [{"command": "getClient", "username": username}], tolerate=("not found",)
        )
        client = (responses[0].get("data") or {}).get("client") or {} if responses else {}
        return [str(r.get("rolename")) for r in client.get("roles") or []]

    async def delete_sensor(self, sensor_id: str) -> None:
        """Remove the client (the plugin disconnects it at once) and its role; clear its
        retained status so a retired sensor leaves nothing behind on the broker."""
        await self.acall(
            [
                {"command": "deleteClient", "username": sensor_id},
                {"command": "deleteRole", "rolename": sensor_role(sensor_id)},
            ],
            tolerate=("not found",),
        )
        await asyncio.to_thread(self._clear_retained, sensor_id)

    def _clear_retained(self, sensor_id: str) -> None:
        info = self._client.publish(f"ansim/v1/sensors/{sensor_id}/status", b"", qos=1, retain=True)
        info.wait_for_publish(self._timeout)
