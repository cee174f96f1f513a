"""Schema v3: street segments, their grade history, anonymous incidents, scheduler jobs.

* `segments` holds the current base grade and geometry (GeoJSON coordinates as JSON text)
  of every imported segment; `segment_imports` is one row per import and
  `segment_base_changes` the base grades each import added or changed.
* `grade_runs` is one row per recompute (its parameters and summary); `segment_grades`
  holds the current adjusted grade of the segments that differ from a plain base grade
  (above base, or with incidents nearby) — a missing row means "base grade, no
  incidents"; `grade_changes` keeps, per run, only the segments whose grade changed.
* `incidents` are anonymous copies of resolved alerts (no household id, location at the
  household's street segment): they outlive the household's erasure so its incidents
  keep counting in the grades.
* `locks` is a named lease taken in a write transaction, so that two processes (API and
  scheduler) never recompute at once; `scheduler_jobs`, `job_runs` and `job_requests`
  let operators list jobs and ask the scheduler process to run one now.
"""

SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS segments (
    segment_id       TEXT PRIMARY KEY,
    base_grade       INTEGER NOT NULL CHECK (base_grade BETWEEN 1 AND 5),
    dong             TEXT,
    coords           TEXT NOT NULL,
    mid_lat          REAL NOT NULL,
    mid_lon          REAL NOT NULL,
    import_id        INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS segment_imports (
    import_id     INTEGER PRIMARY KEY,
    imported_us   INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    features      INTEGER NOT NULL,
    added         INTEGER NOT NULL,
    changed       INTEGER NOT NULL,
    unchanged     INTEGER NOT NULL,
    rejected      INTEGER NOT NULL,
    detail        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS segment_base_changes (
    import_id       INTEGER NOT NULL,
    segment_id      TEXT NOT NULL,
    old_base_grade  INTEGER,
    new_base_grade  INTEGER NOT NULL,
    PRIMARY KEY (segment_id, import_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS grade_runs (
    run_id        INTEGER PRIMARY KEY,
    started_us    INTEGER NOT NULL,
    finished_us   INTEGER,
    as_of_us      INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    params        TEXT NOT NULL,
    summary       TEXT,
    error         TEXT
);

CREATE TABLE IF NOT EXISTS segment_grades (
    segment_id          TEXT PRIMARY KEY,
    run_id              INTEGER NOT NULL,
    base_grade          INTEGER NOT NULL,
    grade               INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 5),
    previous_grade      INTEGER,
    score               REAL NOT NULL,
    weighted_incidents  REAL NOT NULL,
    household_exposure  REAL NOT NULL,
    held                INTEGER NOT NULL DEFAULT 0,
    incident_count      INTEGER NOT NULL,
    contributions       TEXT NOT NULL,
    explanation         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS grade_changes (
    run_id          INTEGER NOT NULL,
    segment_id      TEXT NOT NULL,
    base_grade      INTEGER NOT NULL,
    before_grade    INTEGER NOT NULL,
    after_grade     INTEGER NOT NULL,
    score           REAL NOT NULL,
    incident_count  INTEGER NOT NULL,
    explanation     TEXT NOT NULL,
    PRIMARY KEY (segment_id, run_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grade_changes_by_run ON grade_changes(run_id);

CREATE TABLE IF NOT EXISTS incidents (
    incident_id   TEXT PRIMARY KEY,
    source_key    TEXT NOT NULL UNIQUE,
    segment_id    TEXT,
    lat           REAL NOT NULL,
    lon           REAL NOT NULL,
    occurred_us   INTEGER NOT NULL,
    resolution    TEXT NOT NULL CHECK (resolution IN ('confirmed', 'false_alarm')),
    kind          TEXT,
    recorded_us   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_time ON incidents(occurred_us);

CREATE INDEX IF NOT EXISTS households_by_segment ON households(segment_id);

CREATE TABLE IF NOT EXISTS locks (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_us  INTEGER NOT NULL,
    expires_us   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS scheduler_jobs (
    job_id        TEXT PRIMARY KEY,
    description   TEXT NOT NULL,
    schedule      TEXT NOT NULL,
    next_run_us   INTEGER,
    updated_us    INTEGER NOT NULL
);
INSERT OR IGNORE INTO scheduler_jobs (job_id, description, schedule, updated_us) VALUES
    ('grade_recompute', 'recompute the adjusted segment grades', 'daily 02:00', 0),
    ('retention_purge', 'delete raw door events older than the retention period',
     'daily 03:30', 0),
    ('offline_sweep', 'mark sensors silent for three heartbeat intervals offline',
     'every 60 s', 0);

CREATE TABLE IF NOT EXISTS job_runs (
    job_run_id    INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    requested_by  TEXT,
    started_us    INTEGER NOT NULL,
    finished_us   INTEGER,
    outcome       TEXT NOT NULL DEFAULT 'running',
    result        TEXT,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs(job_id, job_run_id);

CREATE TABLE IF NOT EXISTS job_requests (
    request_id    INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    requested_us  INTEGER NOT NULL,
    requested_by  TEXT NOT NULL,
    picked_us     INTEGER,
    job_run_id    INTEGER
);
CREATE INDEX IF NOT EXISTS job_requests_pending ON job_requests(picked_us);
"""
