"""Prometheus metrics of the bridge (served on ANSIM_BRIDGE_METRICS_PORT)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "ansim_bridge_messages_total",
    "Messages handled by outcome (stored, duplicate, heartbeat, status, dead_letter)",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "ansim_bridge_dead_letters_total", "Messages sent to the dead-letter store", ["reason"]
)
DEAD_LETTER_OUTCOMES = Counter(
    "ansim_bridge_dead_letter_outcomes_total",
    "Dead letters stored whole, or only counted (suppressed) over the per-sensor cap",
    ["outcome"],
)
for _outcome in ("stored", "suppressed"):
    DEAD_LETTER_OUTCOMES.labels(_outcome)
BATCH_SECONDS = Histogram(
    "ansim_bridge_batch_seconds",
    "Time to classify and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_SIZE = Histogram(
    "ansim_bridge_batch_size",
    "Messages per committed batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 4000),
)
COMMIT_LATENCY = Histogram(
    "ansim_bridge_commit_latency_seconds",
    "Device timestamp to commit, live mode only (publish→commit when clocks agree)",
    buckets=(
        0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
        1, 2, 5, 10,
    ),
)  # fmt: skip
CONNECTED = Gauge("ansim_bridge_connected", "1 while connected to the broker")
PENDING = Gauge("ansim_bridge_pending_messages", "Received, not yet committed and acknowledged")
RECONNECTS = Counter("ansim_bridge_reconnects_total", "Connections (re)established")
ALERTS = Counter("ansim_bridge_alerts_raised_total", "Alerts raised by the rules")
BATCH_SPLITS = Counter(
    "ansim_bridge_batch_splits_total",
    "Batches split to isolate messages whose commit fails for a lasting reason",
)

# --- latency breakdown (README "Latency"): every hop a message takes in the bridge ---
_HOP_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    1, 2, 5, 10, 30,
)  # fmt: skip
RECEIVE_LATENCY = Histogram(
    "ansim_bridge_receive_latency_seconds",
    "Device timestamp to the bridge's receive, live mode only (sensor → broker → bridge)",
    buckets=_HOP_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "ansim_bridge_queue_wait_seconds",
    "Receive to the start of the batch that handles the message",
    buckets=_HOP_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "ansim_bridge_batch_commit_seconds",
    "Batch start to COMMIT: classify, insert, rules, outbox (per message: its batch's time)",
    buckets=_HOP_BUCKETS,
)
ACK_DELAY = Histogram(
    "ansim_bridge_ack_delay_seconds",
    "COMMIT to the PUBACK handed to the socket",
    buckets=_HOP_BUCKETS,
)
OLDEST_PENDING = Gauge(
    "ansim_bridge_oldest_pending_seconds",
    "Age of the oldest message received and not yet acknowledged (0: none)",
)
