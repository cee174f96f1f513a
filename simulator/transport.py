"""How a sensor reaches the broker: MQTT over TLS, verified with the CA its provisioning
answer carried (`mqtt.ca_pem`), exactly as hardware does; plain TCP only when it was told
so (`mqtt.tls` false — the loopback listener, for tools and tests)."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Verify the broker's certificate and host name; TLS 1.2 or later."""
    ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def use_tls(client: mqtt.Client, tls: bool, ca_pem: str | None) -> None:
    if tls:
        client.tls_set_context(tls_context(ca_pem))
