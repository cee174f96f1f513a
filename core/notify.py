"""Webhook notifications, the pure part: body, signature, retry schedule.

The body is serialised once, when the notification is put in the outbox, and the very
same bytes are sent on every attempt, so the signature and the `Idempotency-Key`
(the notification id) are stable across retries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Ansim-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full-range jitter: delay_n = min(cap, base·2^n)·U(0.5, 1.0);
    after `give_up_s` since creation the notification is marked failed."""

    base_s: float = 1.0
    cap_s: float = 60.0
    give_up_s: float = 48 * 3600

    def delay_s(self, attempts: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap_s, self.base_s * 2.0 ** min(attempts, 30))
        r: float = (rng or random).uniform(0.5, 1.0)
        return raw * r


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url_problem(url: str, allow_http: bool) -> str | None:
    """Why a webhook URL is refused, or None. Webhooks go over https:// (the certificate
    is checked); http:// only to loopback, or anywhere when explicitly allowed."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return "a webhook URL must be http(s)://host/..."
    if scheme == "http" and not allow_http and not _loopback(host):
        return (
            "webhooks outside loopback must use https:// (alert details would cross the"
            " network in clear text); set ANSIM_WEBHOOK_ALLOW_HTTP=1 to allow http://"
        )
    return None


def webhook_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    return hmac.compare_digest(sign(body, secret), header)


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a notification says about an alert (SPEC "Webhook" fields and a few more)."""

    alert_id: str
    kind: str
    state: str
    household_id: str
    sensor_id: str | None
    event_ts: str
    reason: str
    escalated: bool = False
    resolution: str | None = None
    help_requested: bool = False  # the resident answered "help" (said only when true)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    notification_id: str
    recipient: str
    url: str | None
    body: str


def build_notifications(
    facts: AlertFacts,
    notification: str,
    recipients: frozenset[str] | set[str],
    resident_url: str | None,
    centre_url: str | None,
    created_at: str,
) -> list[OutboxItem]:
    """One outbox item per recipient. The id — `{alert_id}.{notification}.{recipient}` —
    is the Idempotency-Key: a repeat of the same notification is the same row."""
    items = []
    for recipient in sorted(recipients):
        url = resident_url if recipient == "resident" else centre_url
        payload: dict[str, Any] = {
            "alert_id": facts.alert_id,
            "kind": facts.kind,
            "state": facts.state,
            "household_id": facts.household_id,
            "sensor_id": facts.sensor_id,
            "event_ts": facts.event_ts,
            "notification": notification,
            "recipient": recipient,
            "reason": facts.reason,
            "escalated": facts.escalated,
            "created_at": created_at,
        }
        if facts.resolution:
            payload["resolution"] = facts.resolution
        if facts.help_requested:
            payload["help_requested"] = True
        items.append(
            OutboxItem(
                notification_id=f"{facts.alert_id}.{notification}.{recipient}",
                recipient=recipient,
                url=url,
                body=webhook_body(payload),
            )
        )
    return items
