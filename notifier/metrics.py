"""The notifier's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "ansim_notifier_attempts_total",
    "Webhook attempts by recipient and outcome",
    ["recipient", "outcome"],
)
DELIVERY_LAG = Histogram(
    "ansim_notifier_delivery_lag_seconds",
    "Outbox insert to successful delivery",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 60, 300, 3600),
)
FIRST_ATTEMPT = Histogram(
    "ansim_notifier_first_attempt_latency_seconds",
    "Outbox insert (alert change committed) to the start of the first attempt",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2, 5, 10, 60),
)
IN_FLIGHT = Gauge("ansim_notifier_in_flight", "Webhook attempts in flight by lane", ["lane"])
CIRCUIT_CHANGES = Counter(
    "ansim_notifier_circuit_changes_total", "Endpoint circuit state changes", ["to"]
)
CIRCUITS_OPEN = Gauge("ansim_notifier_circuits_open", "Endpoints whose circuit is not closed")
PENDING = Gauge("ansim_notifier_pending", "Notifications waiting for an attempt")
