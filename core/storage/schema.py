"""The database schema, one plain text with a version (PRAGMA user_version).

Times are integer microseconds since the epoch, UTC, in columns ending in `_us`;
the device's UTC offset is kept beside its timestamp so it can be shown as sent.
"""

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS tokens (
    token_hash    TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'resident')),
    household_id  TEXT,
    label         TEXT,
    created_us    INTEGER NOT NULL,
    revoked_us    INTEGER
);

CREATE TABLE IF NOT EXISTS households (
    household_id   TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    lat            REAL NOT NULL,
    lon            REAL NOT NULL,
    timezone       TEXT NOT NULL,
    night_window   TEXT NOT NULL,
    webhook_url    TEXT,
    webhook_secret TEXT,
    segment_id     TEXT,
    mode           TEXT NOT NULL DEFAULT 'disarmed',
    mode_since_us  INTEGER NOT NULL,
    created_us     INTEGER NOT NULL,
    unenrolled_us  INTEGER
);

CREATE TABLE IF NOT EXISTS sensors (
    sensor_pk            INTEGER PRIMARY KEY,
    sensor_id            TEXT NOT NULL UNIQUE,
    household_id         TEXT NOT NULL REFERENCES households(household_id),
    mqtt_username        TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    created_us           INTEGER NOT NULL,
    retired_us           INTEGER,
    status               TEXT NOT NULL DEFAULT 'unknown',
    status_reason        TEXT,
    status_us            INTEGER,
    last_seen_us         INTEGER,
    last_received_us     INTEGER,
    battery              INTEGER,
    rssi                 INTEGER,
    clock_skew_s         REAL,
    clock_skewed         INTEGER NOT NULL DEFAULT 0,
    last_boot            INTEGER,
    last_seq             INTEGER,
    last_heartbeat_boot  INTEGER,
    last_heartbeat_seq   INTEGER,
    events_stored        INTEGER NOT NULL DEFAULT 0,
    heartbeats           INTEGER NOT NULL DEFAULT 0,
    duplicates           INTEGER NOT NULL DEFAULT 0,
    last_tamper_us       INTEGER
);
CREATE INDEX IF NOT EXISTS sensors_by_household ON sensors(household_id);

-- door events only (open / close / tamper); heartbeats refresh the sensor row and the
-- per-day rollup below instead of adding 144 rows per sensor per day.
CREATE TABLE IF NOT EXISTS events (
    sensor_pk      INTEGER NOT NULL,
    boot           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    event_us       INTEGER NOT NULL,
    device_us      INTEGER NOT NULL,
    offset_min     INTEGER NOT NULL,
    received_us    INTEGER NOT NULL,
    type           TEXT NOT NULL,
    battery        INTEGER,
    rssi           INTEGER,
    skewed         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_pk, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events(sensor_pk, event_us);

CREATE TABLE IF NOT EXISTS heartbeat_days (
    sensor_pk    INTEGER NOT NULL,
    day          TEXT NOT NULL,
    count        INTEGER NOT NULL,
    min_battery  INTEGER,
    PRIMARY KEY (sensor_pk, day)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS dead_letters (
    dead_letter_id  INTEGER PRIMARY KEY,
    received_us     INTEGER NOT NULL,
    topic           TEXT NOT NULL,
    sensor_id       TEXT,
    reason          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    payload         BLOB NOT NULL,
    payload_size    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters(received_us);

CREATE TABLE IF NOT EXISTS audit_log (
    audit_id    INTEGER PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT
);
"""

# v2: arming modes, alerts and their lifecycle, timers, routines, the notification outbox
SCHEMA_V2 = """
ALTER TABLE sensors ADD COLUMN door_open_since_us INTEGER;
ALTER TABLE sensors ADD COLUMN door_changed_us INTEGER;
CREATE TABLE IF NOT EXISTS mode_changes (
    mode_change_id  INTEGER PRIMARY KEY,
    household_id    TEXT NOT NULL,
    mode            TEXT NOT NULL,
    at_us           INTEGER NOT NULL,
    recorded_us     INTEGER NOT NULL,
    actor           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mode_changes_by_household ON mode_changes(household_id, at_us);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id          TEXT PRIMARY KEY,
    household_id      TEXT NOT NULL,
    sensor_id         TEXT,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL DEFAULT 'open',
    resolution        TEXT,
    event_us          INTEGER NOT NULL,
    event_offset_min  INTEGER NOT NULL DEFAULT 0,
    last_event_us     INTEGER NOT NULL,
    repeats           INTEGER NOT NULL DEFAULT 0,
    reason            TEXT NOT NULL,
    detail            TEXT NOT NULL DEFAULT '{}',
    created_us        INTEGER NOT NULL,
    updated_us        INTEGER NOT NULL,
    acknowledged_us   INTEGER,
    acknowledged_by   TEXT,
    escalated_us      INTEGER,
    resolved_us       INTEGER,
    resolved_by       TEXT,
    segment_id        TEXT,
    raised_us         INTEGER NOT NULL,
    escalate_due_us   INTEGER,
    recipients        TEXT NOT NULL DEFAULT 'resident',
    dedupe_key        TEXT NOT NULL UNIQUE,
    score             REAL
);
CREATE INDEX IF NOT EXISTS alerts_escalation_due ON alerts(escalate_due_us)
    WHERE state = 'open' AND escalated_us IS NULL;
CREATE INDEX IF NOT EXISTS alerts_by_household ON alerts(household_id, created_us);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts(state, kind);
CREATE INDEX IF NOT EXISTS alerts_by_created ON alerts(created_us);

CREATE TABLE IF NOT EXISTS alert_transitions (
    transition_id  INTEGER PRIMARY KEY,
    alert_id       TEXT NOT NULL,
    at_us          INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    detail         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alert_transitions_by_alert ON alert_transitions(alert_id);
CREATE INDEX IF NOT EXISTS alert_transitions_by_id ON alert_transitions(transition_id);

CREATE TABLE IF NOT EXISTS timers (
    key           TEXT PRIMARY KEY,
    household_id  TEXT NOT NULL,
    sensor_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    event_us      INTEGER NOT NULL,
    due_us        INTEGER NOT NULL,
    created_us    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_by_due ON timers(due_us);
CREATE INDEX IF NOT EXISTS timers_by_household ON timers(household_id);

CREATE TABLE IF NOT EXISTS routines (
    household_id  TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    updated_us    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS event_clock (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    now_us    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    notification_id  TEXT PRIMARY KEY,
    alert_id         TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    household_id     TEXT,
    url              TEXT,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_us       INTEGER NOT NULL,
    next_attempt_us  INTEGER NOT NULL,
    delivered_us     INTEGER,
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_us);
CREATE INDEX IF NOT EXISTS outbox_by_alert ON outbox(alert_id);

CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id      INTEGER PRIMARY KEY,
    notification_id  TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    at_us            INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    duration_ms      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_notification ON deliveries(notification_id);
"""

from core.storage.schema_segments import SCHEMA_V3  # noqa: E402 - after the v1/v2 texts

# v4: one row per service (bridge, notifier, scheduler), rewritten every few seconds;
# `/healthz` calls a service down when its row is missing or older than the stale limit.
SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS service_heartbeats (
    part     TEXT PRIMARY KEY,
    at_us    INTEGER NOT NULL,
    pid      INTEGER NOT NULL,
    detail   TEXT
);
"""

# v5: the dead-letter rate cap (core/dead_letter_cap.py): per source (sensor id, or topic
# when none) and per window, how many dead letters were stored whole and how many were only
# counted, with the last reason seen. Purged with the dead letters after their retention.
SCHEMA_V5 = """
CREATE TABLE IF NOT EXISTS dead_letter_tallies (
    source           TEXT NOT NULL,
    window_start_us  INTEGER NOT NULL,
    sensor_id        TEXT,
    topic            TEXT NOT NULL,
    stored           INTEGER NOT NULL,
    suppressed       INTEGER NOT NULL,
    first_us         INTEGER NOT NULL,
    last_us          INTEGER NOT NULL,
    last_reason      TEXT NOT NULL,
    last_detail      TEXT NOT NULL,
    PRIMARY KEY (source, window_start_us)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dead_letter_tallies_by_window
    ON dead_letter_tallies(window_start_us);
CREATE INDEX IF NOT EXISTS dead_letter_tallies_suppressed
    ON dead_letter_tallies(last_us) WHERE suppressed > 0;
INSERT OR IGNORE INTO scheduler_jobs (job_id, description, schedule, updated_us) VALUES
    ('dead_letter_purge', 'delete dead letters older than their retention period',
     'daily 03:45', 0);
"""

# v6: the sensor's broker client has a state of its own, so that no broker call happens
# inside a database transaction (a write transaction waiting on the broker would hold up the
# bridge's ingest). `broker_state`:
#   pending  - row committed, broker client not yet confirmed (provisioning under way, or a
#              crash/outage in between: a retry of the same request or the sweep completes it)
#   active   - the broker client exists; the normal state of a live sensor
#   deleting - retired (the bridge refuses its messages from that commit on), broker client
#              not yet confirmed deleted (a retry or the sweep deletes it)
#   deleted  - retired and its broker client gone
# `broker_state_us` is when it last changed (the sweep's age for a stale `pending`).
# Rows from before v6 were written with the broker call inside the transaction: the live
# ones have their client, the retired ones had it deleted.
SCHEMA_V6 = """
ALTER TABLE sensors ADD COLUMN broker_state TEXT NOT NULL DEFAULT 'active'
    CHECK (broker_state IN ('pending', 'active', 'deleting', 'deleted'));
ALTER TABLE sensors ADD COLUMN broker_state_us INTEGER;
UPDATE sensors SET broker_state = 'deleted' WHERE retired_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS sensors_broker_work ON sensors(broker_state, broker_state_us)
    WHERE broker_state IN ('pending', 'deleting');
"""

# v7 (issue 15, trust): a household's own exit delay in seconds (NULL: ANSIM_EXIT_DELAY_S);
# when and by whom the resident asked for help on an alert (from then on only an operator
# resolves it); and only the kinds about the street are incidents (core.models.INCIDENT_KINDS,
# as of v7): the copies of confirmed battery_low, tamper, sensor_offline and door_left_open
# alerts made before are removed, so the next recompute no longer counts them.
SCHEMA_V7 = """
ALTER TABLE households ADD COLUMN exit_delay_s INTEGER CHECK (exit_delay_s >= 0);
ALTER TABLE alerts ADD COLUMN help_us INTEGER;
ALTER TABLE alerts ADD COLUMN help_by TEXT;
DELETE FROM incidents WHERE kind IS NOT NULL AND kind NOT IN ('intrusion', 'night_opening');
"""

# v8 (issue 15, panic): the hash of the household's duress PIN (NULL: none set); a disarm
# with it raises a `duress` alert for the control centre only. Confirmed `help` and `duress`
# alerts are incidents (core.models.INCIDENT_KINDS); none existed before v8.
SCHEMA_V8 = """
ALTER TABLE households ADD COLUMN duress_pin_hash TEXT;
"""

MIGRATIONS: list[tuple[int, str]] = [
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
    (7, SCHEMA_V7),
    (8, SCHEMA_V8),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def statements(script: str) -> list[str]:
    """A migration script's statements: each ends with `;` at the end of a line; lines
    starting with `--` are comments."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
    return out
