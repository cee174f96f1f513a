"""Drive paho-mqtt from the asyncio event loop instead of paho's own thread.

The socket is registered with the loop (`add_reader`/`add_writer`), so paho's receive
path runs on the loop with no thread hand-off; the paho callbacks only convert the
message and append it to a buffer (as aiomqtt does).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import paho.mqtt.client as mqtt


class AsyncioPaho:
    def __init__(self, loop: asyncio.AbstractEventLoop, client: mqtt.Client) -> None:
        self.loop = loop
        self.client = client
        self._misc: asyncio.Task[None] | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.loop.add_reader(sock, self._read)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._misc = self.loop.create_task(self._misc_loop())

    def _read(self) -> None:
        self.client.loop_read(64)

    def _on_socket_close(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        # keepalive pings and timeouts, once a second, as paho's own loop does
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - polling by design
            await asyncio.sleep(1)
