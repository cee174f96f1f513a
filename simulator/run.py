"""One simulation run: enrol → connect → publish the plan on the wall clock → catch up →
read alerts back → score.

1. **Plan** (pure, seeded): `build_fleet`, the scenario's injections (`expand_scenario`)
   and `plan_fleet` give every action with its simulated time. The same seed gives the
   same plan; `plan_digest` fingerprints it (topic owner + payload of every message, in
   order) and is written into the report.
2. **Enrol** through the API as an operator: a household per persona (`POST
   /api/v1/households`) and a sensor each (`POST /households/{id}/sensors`), a few
   requests at a time. When street segments are imported (`GET /api/v1/segments`, read
   once), each household lives on them, at a spot drawn from her seed and index
   (`place_on_streets`); otherwise at her persona's spot in the district's box.
3. **Connect** every sensor with its own credentials, in batches (`simulator.fleet`).
4. **Publish**: item `i` goes out at `wall0 + (send_at - start) / speed`. Sensor messages
   are PlanItem payloads unchanged, QoS 1. A mode change is `PUT /households/{id}/mode`
   with the event time in `at`; it is a barrier: nothing later in the plan is published
   before the mode changes due so far have been answered, so the backend never sees an
   event before the arming it follows. Power loss and link faults drop the TCP connection
   without DISCONNECT (the broker publishes the Last Will); power-on and link-up reconnect.
5. **Catch up**: wait for every PUBACK, then poll `GET /sensors/{id}` until each sensor's
   `events_stored` and `heartbeats` reach what it sent (or stop moving).
6. **Score**: alerts of this fleet's households from `GET /api/v1/alerts` (paginated),
   ground truth bound to the real ids and stamped with `sent_at`, `score_run`.

A sidecar `TRUTH.run.json` keeps what `ansim simulate score` needs to score again later
(the fleet's ids, events sent per sensor, period, speed).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from core.broker.tls import api_verify
from core.settings import Settings
from core.wire import event_topic
from simulator.fleet import Fleet, SensorCredentials
from simulator.load import run_load
from simulator.personas import Household, build_fleet
from simulator.progress import Counters, Progress
from simulator.routines import ItemKind, replay_door_log
from simulator.scenario import (
    QUIET,
    Expansion,
    PlanItem,
    expand_scenario,
    household_weeks,
    load_scenario,
    local_midnight,
    plan_fleet,
    plan_household,
)
from simulator.scoring import matches, percentile, score_run
from simulator.truth import TruthRecord, TruthWriter, bind_ids, read_truth, with_sent_at

log = logging.getLogger("ansim.simulator")

MESSAGE_KINDS = frozenset(
    {ItemKind.OPEN, ItemKind.CLOSE, ItemKind.TAMPER, ItemKind.HEARTBEAT, ItemKind.RAW}
)


class SimulationError(RuntimeError):
    """A run that cannot go on (no token, enrolment refused, fleet cannot connect)."""


@dataclass
class RunOptions:
    households: int = 10
    days: float = 1.0
    speed: float = 3600.0
    seed: int = 1
    scenario: Path | None = None
    report: Path | None = None
    truth: Path | None = None
    start: str | None = None  # YYYY-MM-DD (local midnight); default: see `period`
    token: str | None = None
    rate: float | None = None  # load mode: events/s across the fleet
    duration_s: float | None = None  # load mode wall time; default days*86400/speed
    door_log: Path | None = None  # replay this Ordóñez log as the first household
    connect_batch: int = 250
    http_concurrency: int = 16
    settle_s: float = 2.0
    catch_up_quiet_s: float = 10.0
    catch_up_timeout_s: float = 300.0
    max_unacked: int = 50_000
    progress: bool = True
    dry_run: bool = False
    timezone: str = "Asia/Seoul"
    respond: bool = True  # answer alerts as residents and operators do
    respond_every_s: float = 1.0


@dataclass
class Prepared:
    fleet: list[Household]
    start: datetime
    end: datetime
    expansion: Expansion
    scenario_name: str
    door_log_text: str | None = None

    def plan(self) -> Iterator[PlanItem]:
        injections = self.expansion.injections
        if self.door_log_text is None or not self.fleet:
            return plan_fleet(self.fleet, self.start, self.end, injections)
        first = self.fleet[0]
        timeline = [
            i for i in replay_door_log(first, self.door_log_text, self.start) if i.at < self.end
        ]
        mine = [i for i in injections if i.household_key == first.key]
        return heapq.merge(
            plan_household(first, self.start, self.end, mine, timeline=timeline),
            plan_fleet(self.fleet[1:], self.start, self.end, injections),
            key=lambda p: (p.send_at, p.household_key, p.order),
        )

    @property
    def truth(self) -> list[TruthRecord]:
        return self.expansion.truth()


@dataclass
class PlanSummary:
    items: int = 0
    events: int = 0
    door_events: dict[str, int] = field(default_factory=dict)  # by household key
    heartbeats: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    digest: str = ""


def period(opts: RunOptions, now: datetime | None = None) -> tuple[datetime, datetime]:
    """`--start` is a local midnight. Without it: now (to the second) in real time, where
    the live backend checks device clocks; today's local midnight at accelerated speed."""
    zone = ZoneInfo(opts.timezone)
    if opts.start:
        start = local_midnight(opts.start, opts.timezone)
    elif opts.speed == 1:
        start = (now or datetime.now(zone)).astimezone(zone).replace(microsecond=0)
    else:
        start = local_midnight((now or datetime.now(zone)).astimezone(zone).date().isoformat())
    return start, start + timedelta(days=opts.days)


def prepare(opts: RunOptions, now: datetime | None = None) -> Prepared:
    if opts.households < 1 or opts.days <= 0 or opts.speed <= 0:
        raise SimulationError("--households, --days and --speed must be positive")
    start, end = period(opts, now)
    fleet = build_fleet(opts.households, opts.seed)
    scenario = load_scenario(opts.scenario) if opts.scenario else QUIET
    expansion = expand_scenario(scenario, fleet, opts.seed, start, end)
    text = opts.door_log.read_text(encoding="utf-8") if opts.door_log else None
    return Prepared(fleet, start, end, expansion, scenario.name, text)


def summarise_plan(items: Iterator[PlanItem]) -> PlanSummary:
    """Counts and the digest of a plan (walks it once)."""
    s = PlanSummary()
    h = hashlib.sha256()
    for item in items:
        _account(s, h, item)
    s.digest = h.hexdigest()
    return s


def _account(s: PlanSummary, h: Any, item: PlanItem) -> None:
    s.items += 1
    s.kinds[item.kind.value] = s.kinds.get(item.kind.value, 0) + 1
    if item.payload is not None:
        h.update(f"{item.household_key}>{item.topic_key}|".encode())
        h.update(item.payload)
        h.update(b"\n")
    elif item.kind is ItemKind.MODE:
        h.update(f"{item.household_key}|mode|{item.mode}|{item.at.isoformat()}\n".encode())
    else:
        h.update(f"{item.household_key}|{item.kind.value}|{item.at.isoformat()}\n".encode())
    if item.counts_as_event:
        s.events += 1
        bucket = s.heartbeats if item.kind is ItemKind.HEARTBEAT else s.door_events
        bucket[item.household_key] = bucket.get(item.household_key, 0) + 1


# --- the API ------------------------------------------------------------------------


def api_client(settings: Settings, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.api_base_url,
        verify=api_verify(settings),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


async def check_health(api: httpx.AsyncClient, speed: float, progress: Progress) -> str | None:
    try:
        r = await api.get("/healthz")
        mode = str(r.json().get("time_mode"))
    except (httpx.HTTPError, ValueError) as exc:
        raise SimulationError(f"the API at {api.base_url} does not answer /healthz: {exc}") from exc
    if speed > 1 and mode != "replay":
        progress.message(
            f"warning: the backend runs in {mode!r} time mode but --speed is {speed:g}: "
            "device clocks will look skewed and time-based rules follow the wall clock; "
            "start it with ANSIM_TIME_MODE=replay"
        )
    if speed == 1 and mode == "replay":
        progress.message("note: real-time run against a backend in replay mode")
    return mode


_M_PER_DEG = 111_195.0  # metres per degree of latitude (mean Earth radius); lengths only weigh

StreetPlaces = dict[str, tuple[float, float]]
"""Where each household of the fleet lives on the imported streets: key → (lat, lon)."""


def place_on_streets(fleet: list[Household], features: list[dict[str, Any]]) -> StreetPlaces:
    """Pure: a spot on the imported streets for every household, from her seed and index.

    The street network is every piece (two consecutive vertices) of every LineString,
    taken in `segment_id` order so that the answer does not depend on the order the API
    lists them in. Each household draws one number from her own stream
    (`ansim-place:{seed}:{index}`, apart from her persona's draws, so the plan is
    untouched) and lives at that fraction of the network's length: uniform along the
    streets, wherever they are, on a segment itself (distance 0, well inside the
    enrolment limit of 50 m). Empty when there are no segments."""
    lines = sorted(
        (str(f["properties"]["segment_id"]), f["geometry"]["coordinates"]) for f in features
    )
    pieces: list[tuple[float, float, float, float]] = []  # lon0, lat0, lon1, lat1
    cumulative: list[float] = []
    total = 0.0
    for _, coords in lines:
        for (lon0, lat0), (lon1, lat1) in itertools.pairwise(coords):
            east = (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2)) * _M_PER_DEG
            north = (lat1 - lat0) * _M_PER_DEG
            length = math.hypot(east, north)
            if length > 0:
                total += length
                pieces.append((lon0, lat0, lon1, lat1))
                cumulative.append(total)
    if not pieces:
        if not lines:
            return {}
        lon, lat = lines[0][1][0]  # every segment is a single point repeated
        return {h.key: (lat, lon) for h in fleet}
    out: StreetPlaces = {}
    for h in fleet:
        u = random.Random(f"ansim-place:{h.seed}:{h.index}").random() * total
        i = min(bisect.bisect_right(cumulative, u), len(pieces) - 1)
        before = cumulative[i - 1] if i else 0.0
        t = min(1.0, max(0.0, (u - before) / (cumulative[i] - before)))
        lon0, lat0, lon1, lat1 = pieces[i]
        out[h.key] = (round(lat0 + t * (lat1 - lat0), 7), round(lon0 + t * (lon1 - lon0), 7))
    return out


async def read_street_places(
    api: httpx.AsyncClient, fleet: list[Household], progress: Progress
) -> tuple[StreetPlaces, int]:
    """Every imported segment, read once (`GET /api/v1/segments`), and each household's
    spot on them; empty while no segments are imported (the personas' own spots then)."""
    try:
        r = await api.get("/api/v1/segments", timeout=300)
    except httpx.HTTPError as exc:
        raise SimulationError(f"reading the imported street segments failed: {exc}") from exc
    if r.status_code != 200:
        raise SimulationError(
            f"reading the imported street segments failed: {r.status_code} {r.text[:200]}"
        )
    features: list[dict[str, Any]] = r.json().get("features", [])
    places = place_on_streets(fleet, features)
    if places:
        progress.message(f"placing {len(fleet)} households on {len(features)} imported segments")
    return places, len(features)


async def respond_to_alerts(
    api: httpx.AsyncClient,
    truth: list[TruthRecord],
    household_ids: set[str],
    opts: RunOptions,
    stop: asyncio.Event,
    counters: Counters,
) -> None:
    """The residents and the ward operators of the simulated fleet: every `respond_every_s`
    of wall time, open alerts of this fleet are answered from the ground truth — one that an
    injected incident explains is resolved `confirmed` by the operator (an incident, for the
    grades); any other gets the resident's "it was me" (`false_alarm`, which her routine
    model learns). Without answers, unresolved intrusions would teach a household's model
    at half weight, as they do in real life when nobody answers."""
    by_household: dict[str, list[TruthRecord]] = {}
    for record in truth:
        if record.household_id is not None:
            by_household.setdefault(record.household_id, []).append(record)
    answered: set[str] = set()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), opts.respond_every_s)
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"state": "open", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            try:
                r = await api.get("/api/v1/alerts", params=params)
            except httpx.HTTPError:
                counters.http_errors += 1
                break
            if r.status_code != 200:
                break
            page = r.json()
            for alert in page["data"]:
                aid = str(alert["alert_id"])
                if aid in answered or alert["household_id"] not in household_ids:
                    continue
                records = by_household.get(str(alert["household_id"]), [])
                incident = any(
                    rec.category == "incident" and matches(alert, rec, opts.speed)
                    for rec in records
                )
                if incident:
                    resp = await api.post(
                        f"/api/v1/alerts/{aid}/resolve", json={"resolution": "confirmed"}
                    )
                else:
                    resp = await api.post(
                        f"/api/v1/alerts/{aid}/answer", json={"answer": "it_was_me"}
                    )
                if resp.status_code in (200, 409):
                    answered.add(aid)
                else:
                    counters.http_errors += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break


async def enrol_fleet(
    api: httpx.AsyncClient,
    settings: Settings,
    fleet: list[Household],
    concurrency: int,
    progress: Progress,
    places: StreetPlaces | None = None,
) -> dict[str, SensorCredentials]:
    """A household and a sensor for every persona; she lives at `places[key]` (her spot on
    the imported streets) when given, else at her persona's own spot."""
    places = places or {}
    progress.start_phase("enrol", len(fleet))
    sem = asyncio.Semaphore(concurrency)
    out: dict[str, SensorCredentials] = {}

    async def one(h: Household) -> None:
        async with sem:
            body = {
                "name": h.display_name,
                "lat": h.lat,
                "lon": h.lon,
                "timezone": h.timezone,
                "night_window": str(h.night_window),
            }
            if h.key in places:
                body["lat"], body["lon"] = places[h.key]
            r = await api.post("/api/v1/households", json=body)
            if r.status_code != 201:
                hint = (
                    " (no segments were imported yet when the run read them; run again"
                    " to place the households on the streets imported since)"
                    if r.status_code == 422 and "street" in r.text and not places
                    else ""
                )
                raise SimulationError(f"enrolling {h.key} failed: {r.status_code} {r.text}{hint}")
            household_id = str(r.json()["household_id"])
            for attempt in range(20):
                r = await api.post(f"/api/v1/households/{household_id}/sensors", json={})
                if r.status_code != 404:
                    break
                # the API's read connection may not see the new household yet
                await asyncio.sleep(0.05 * (attempt + 1))
            if r.status_code != 201:
                raise SimulationError(f"provisioning {h.key} failed: {r.status_code} {r.text}")
            prov = r.json()
            mq = prov["mqtt"]
            host = str(mq.get("host") or settings.mqtt_host)
            out[h.key] = SensorCredentials(
                h.key, household_id, str(prov["sensor_id"]), host, int(mq["port"]),
                str(mq["password"]), tls=bool(mq.get("tls")), ca_pem=mq.get("ca_pem"),
            )  # fmt: skip
            progress.done += 1
            progress.tick()

    await asyncio.gather(*(one(h) for h in fleet))
    progress.finish_line()
    return out


async def put_mode(
    api: httpx.AsyncClient, household_id: str, item: PlanItem, counters: Counters
) -> None:
    body = {"mode": str(item.mode), "at": item.at.isoformat(timespec="milliseconds")}
    try:
        r = await api.put(f"/api/v1/households/{household_id}/mode", json=body)
        ok = r.status_code < 300
        detail = r.text[:200]
    except httpx.HTTPError as exc:
        ok, detail = False, str(exc)
    if ok:
        counters.modes_sent += 1
    else:
        counters.http_errors += 1
        if counters.http_errors <= 5:
            log.warning("mode change failed", extra={"household_id": household_id, "error": detail})


async def fetch_sensor(api: httpx.AsyncClient, sensor_id: str) -> dict[str, Any] | None:
    try:
        r = await api.get(f"/api/v1/sensors/{sensor_id}")
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    data: dict[str, Any] = r.json()
    return data


async def catch_up(
    api: httpx.AsyncClient,
    ids: dict[str, SensorCredentials],
    door_expected: dict[str, int],
    hb_expected: dict[str, int],
    opts: RunOptions,
    progress: Progress,
) -> dict[str, dict[str, Any]]:
    """Poll the sensors until each has stored what it sent, or nothing moves for
    `catch_up_quiet_s`. Returns the last state of every sensor, by household key."""
    progress.start_phase("catch-up", len(ids))
    sem = asyncio.Semaphore(opts.http_concurrency * 2)
    states: dict[str, dict[str, Any]] = {}
    todo = set(ids)
    deadline = time.monotonic() + opts.catch_up_timeout_s
    last_total, last_move = -1, time.monotonic()

    async def poll(key: str) -> None:
        async with sem:
            state = await fetch_sensor(api, ids[key].sensor_id)
        if state is not None:
            states[key] = state

    while todo and time.monotonic() < deadline:
        await asyncio.gather(*(poll(k) for k in sorted(todo)))
        for key in list(todo):
            st = states.get(key)
            if (
                st is not None
                and st.get("events_stored", 0) >= door_expected.get(key, 0)
                and st.get("heartbeats", 0) >= hb_expected.get(key, 0)
            ):
                todo.discard(key)
        total = sum(_stored(s) for s in states.values())
        progress.done = len(ids) - len(todo)
        progress.note = f"stored {total}"
        progress.tick()
        if total != last_total:
            last_total, last_move = total, time.monotonic()
        elif time.monotonic() - last_move > opts.catch_up_quiet_s:
            break
        if todo:
            await asyncio.sleep(0.25)
    progress.finish_line()
    return states


def _stored(state: dict[str, Any]) -> int:
    return int(state.get("events_stored", 0)) + int(state.get("heartbeats", 0))


async def fetch_alerts(
    api: httpx.AsyncClient, household_ids: set[str]
) -> tuple[list[dict[str, Any]], str]:
    """Alerts of these households, every page; ("…", "missing") when the route 404s."""
    alerts: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = await api.get("/api/v1/alerts", params=params)
        if r.status_code == 404:
            return [], "missing"
        if r.status_code != 200:
            return alerts, f"error {r.status_code}"
        page = r.json()
        alerts += [a for a in page.get("data", []) if a.get("household_id") in household_ids]
        cursor = page.get("next_cursor")
        if not cursor:
            return alerts, "ok"


# --- publishing the plan ------------------------------------------------------------


@dataclass
class Published:
    summary: PlanSummary
    sent_at: dict[str, datetime]
    wall_s: float
    lag_max_s: float


async def publish_plan(
    prep: Prepared,
    fleet: Fleet,
    ids: dict[str, SensorCredentials],
    api: httpx.AsyncClient,
    opts: RunOptions,
    progress: Progress,
) -> Published:
    loop = asyncio.get_running_loop()
    counters = fleet.counters
    summary = PlanSummary()
    digest = hashlib.sha256()
    records = sorted(prep.truth, key=lambda r: r.at)
    sent_at: dict[str, datetime] = {}
    ri = 0
    sem = asyncio.Semaphore(opts.http_concurrency)
    pending_modes: list[asyncio.Task[None]] = []
    span_s = (prep.end - prep.start).total_seconds()
    progress.start_phase("run")
    wall0 = loop.time() + 0.2
    lag_max = 0.0
    since_yield = 0

    async def mode_change(household_id: str, item: PlanItem) -> None:
        async with sem:
            await put_mode(api, household_id, item, counters)

    for item in prep.plan():
        target = wall0 + (item.send_at - prep.start).total_seconds() / opts.speed
        is_mode = item.kind is ItemKind.MODE
        if not is_mode and pending_modes:
            await asyncio.gather(*pending_modes)  # the barrier: arming before what follows
            pending_modes.clear()
        delay = target - loop.time()
        if delay > 0.001:
            if pending_modes:
                await asyncio.gather(*pending_modes)
                pending_modes.clear()
            await asyncio.sleep(delay)
            since_yield = 0
        else:
            lag_max = max(lag_max, -delay)
            since_yield += 1
            if since_yield >= 200:
                await asyncio.sleep(0)
                since_yield = 0
        while counters.published - counters.acked > opts.max_unacked:  # noqa: ASYNC110 - back-pressure poll
            await asyncio.sleep(0.005)
        now_wall = datetime.now(UTC)
        while ri < len(records) and records[ri].at <= item.send_at:
            sent_at[records[ri].record_id] = now_wall
            ri += 1
        _account(summary, digest, item)
        sensor = fleet.sensors[item.household_key]
        if item.kind in MESSAGE_KINDS:
            assert item.payload is not None
            target_id = ids[item.topic_key].sensor_id
            sensor.publish(event_topic(target_id), item.payload)
            if item.counts_as_event:
                counters.events_sent += 1
        elif is_mode:
            hid = ids[item.household_key].household_id
            pending_modes.append(loop.create_task(mode_change(hid, item)))
        elif item.kind in (ItemKind.POWER_OFF, ItemKind.LINK_DOWN):
            sensor.drop()
        elif item.kind in (ItemKind.POWER_ON, ItemKind.LINK_UP):
            sensor.start_connect()
        progress.done = summary.items
        sim_done = (item.send_at - prep.start).total_seconds()
        progress.note = f"sim {100 * sim_done / span_s:5.1f}%  {item.send_at:%m-%d %H:%M}"
        progress.tick()
    if pending_modes:
        await asyncio.gather(*pending_modes)
    # records whose time came after the last item: when the schedule reached them
    for r in records[ri:]:
        offset = (r.at - prep.start).total_seconds() / opts.speed
        sent_at[r.record_id] = datetime.now(UTC) + timedelta(seconds=offset - (loop.time() - wall0))
    end_target = wall0 + span_s / opts.speed
    if end_target > loop.time():
        await asyncio.sleep(end_target - loop.time())  # the period runs to its end
    summary.digest = digest.hexdigest()
    progress.finish_line()
    return Published(summary, sent_at, loop.time() - wall0, lag_max)


# --- the whole run ------------------------------------------------------------------


def _sidecar(truth_path: Path) -> Path:
    return truth_path.with_name(truth_path.name + ".run.json")


async def run_async(settings: Settings, opts: RunOptions) -> dict[str, Any]:
    t_start = time.monotonic()
    counters = Counters()
    progress = Progress(counters, enabled=opts.progress)
    prep = prepare(opts)
    for note in prep.expansion.skipped:
        log.info("injection skipped", extra={"reason": note})
    if opts.dry_run:
        summary = summarise_plan(prep.plan())
        if opts.truth:
            with TruthWriter(opts.truth) as w:
                for r in prep.truth:
                    w.write(r)
        return _dry_report(prep, opts, summary)
    token = opts.token or settings.api_token
    if not token:
        raise SimulationError("the simulator needs an operator token: ANSIM_API_TOKEN or --token")
    async with api_client(settings, token) as api:
        time_mode = await check_health(api, opts.speed, progress)
        places, n_segments = await read_street_places(api, prep.fleet, progress)
        ids = await enrol_fleet(api, settings, prep.fleet, opts.http_concurrency, progress, places)
        fleet = Fleet(counters)
        for h in prep.fleet:
            fleet.add(ids[h.key])
        progress.start_phase("connect", len(ids))

        def on_batch(n: int) -> None:
            progress.done = n
            progress.tick()

        failed = await fleet.connect_all(opts.connect_batch, on_batch=on_batch)
        progress.finish_line()
        if failed:
            sample = ", ".join(f"{s.sensor_id} ({s.refused or 'timeout'})" for s in failed[:5])
            progress.message(f"warning: {len(failed)} sensors did not connect: {sample}")
        t_connected = time.monotonic()
        load = None
        if opts.rate:
            duration = opts.duration_s or opts.days * 86_400 / opts.speed
            load = await run_load(
                fleet, prep.fleet, opts.rate, duration, prep.start, opts.speed, progress,
                opts.max_unacked,
            )  # fmt: skip
            progress.finish_line()
            door_expected, hb_expected = load.door_events_sent, load.heartbeats_sent
            events_sent, sent_at, wall_s, lag_max = load.events_sent, {}, load.wall_s, 0.0
            plan_summary = None
        else:
            responder_stop = asyncio.Event()
            responder = None
            if opts.respond:
                bound = {k: (c.household_id, c.sensor_id) for k, c in ids.items()}
                responder = asyncio.create_task(
                    respond_to_alerts(
                        api, bind_ids(prep.truth, bound), {c.household_id for c in ids.values()},
                        opts, responder_stop, counters,
                    )
                )  # fmt: skip
            published = await publish_plan(prep, fleet, ids, api, opts, progress)
            responder_stop.set()
            if responder is not None:
                await responder
            plan_summary = published.summary
            door_expected, hb_expected = plan_summary.door_events, plan_summary.heartbeats
            events_sent, sent_at = plan_summary.events, published.sent_at
            wall_s, lag_max = published.wall_s, published.lag_max_s
        t_published = time.monotonic()
        progress.start_phase("acks")
        acked_all = await fleet.wait_acked(60.0, progress.tick)
        progress.finish_line()
        states = await catch_up(api, ids, door_expected, hb_expected, opts, progress)
        t_stored = time.monotonic()
        await asyncio.sleep(opts.settle_s)
        household_ids = {c.household_id for c in ids.values()}
        alerts, alerts_api = await fetch_alerts(api, household_ids)
        if alerts_api == "missing":
            progress.message("note: GET /api/v1/alerts answered 404: scored as no alerts")
        ack_lat = sorted(fleet.ack_latencies)
        await fleet.close(graceful=True)

    bound_ids = {k: (c.household_id, c.sensor_id) for k, c in ids.items()}
    truth = with_sent_at(bind_ids(prep.truth, bound_ids), sent_at)
    if load is not None:
        truth = []
    door_stored = sum(int(s.get("events_stored", 0)) for s in states.values())
    hb_stored = sum(int(s.get("heartbeats", 0)) for s in states.values())
    hw = household_weeks(len(prep.fleet), prep.start, prep.end)
    report = score_run(
        truth, alerts, events_sent=events_sent, events_stored=door_stored + hb_stored,
        household_weeks=hw, speed=opts.speed,
    )  # fmt: skip
    stored_s = t_stored - t_connected
    report.update(
        {
            "door_events_sent": sum(door_expected.values()),
            "door_events_stored": door_stored,
            "heartbeats_sent": sum(hb_expected.values()),
            "heartbeats_stored": hb_stored,
            "duplicates_dropped": sum(int(s.get("duplicates", 0)) for s in states.values()),
            "sensors_short": sorted(
                ids[k].sensor_id
                for k in ids
                if int(states.get(k, {}).get("events_stored", 0)) < door_expected.get(k, 0)
                or int(states.get(k, {}).get("heartbeats", 0)) < hb_expected.get(k, 0)
            )[:50],
            "messages_published": counters.published,
            "messages_acked": counters.acked,
            "all_acked": acked_all,
            "ack_latency_p50_ms": _ms(percentile(ack_lat, 50)),
            "ack_latency_p99_ms": _ms(percentile(ack_lat, 99)),
            "mode_changes_sent": counters.modes_sent,
            "http_errors": counters.http_errors,
            "sensors": len(ids),
            "sensors_not_connected": len(failed),
            "alerts_api": alerts_api,
            "injections_skipped": list(prep.expansion.skipped[:50]),
            "run": {
                **_run_identity(opts, prep),
                "backend_time_mode": time_mode,
                # where the households were enrolled: on the imported streets (seeded), or
                # at the personas' own spots in the district's box while none are imported
                "placement": "streets" if places else "district_bbox",
                "segments_read": n_segments,
                "plan_digest": plan_summary.digest if plan_summary else None,
                "plan_items": plan_summary.kinds if plan_summary else None,
                "wall_s_total": round(time.monotonic() - t_start, 3),
                "wall_s_publish": round(wall_s, 3),
                "wall_s_connect": round(t_connected - t_start, 3),
                "publisher_lag_max_s": round(lag_max, 3),
                "events_per_s_sent": round(events_sent / wall_s, 1) if wall_s > 0 else None,
                "events_per_s_stored": (
                    round((door_stored + hb_stored) / stored_s, 1) if stored_s > 0 else None
                ),
                "catch_up_s": round(t_stored - t_published, 3),
            },
        }
    )
    if load is not None:
        report["load"] = {
            "target_rate": opts.rate,
            "achieved_rate": round(load.achieved_rate, 1),
            "max_behind": load.max_behind,
            "wall_s": round(load.wall_s, 3),
        }
    truth_path = opts.truth or (
        opts.report.with_name(opts.report.stem + ".truth.jsonl") if opts.report else None
    )
    if truth_path is not None:
        with TruthWriter(truth_path) as w:
            for r in truth:
                w.write(r)
        _sidecar(truth_path).write_text(
            json.dumps(
                {
                    "speed": opts.speed,
                    "start": prep.start.isoformat(),
                    "end": prep.end.isoformat(),
                    "household_weeks": hw,
                    "events_sent": events_sent,
                    "door_events_sent": door_expected,
                    "heartbeats_sent": hb_expected,
                    "households": {
                        k: {"household_id": c.household_id, "sensor_id": c.sensor_id}
                        for k, c in ids.items()
                    },
                },
                indent=1,
            )
        )
        report["truth_file"] = str(truth_path)
    if opts.report:
        opts.report.parent.mkdir(parents=True, exist_ok=True)
        opts.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _run_identity(opts: RunOptions, prep: Prepared) -> dict[str, Any]:
    """What identifies a run in its report (and makes it repeatable)."""
    return {
        "households": opts.households,
        "days": opts.days,
        "speed": opts.speed,
        "seed": opts.seed,
        "scenario": prep.scenario_name,
        "start": prep.start.isoformat(),
        "end": prep.end.isoformat(),
    }


def _dry_report(prep: Prepared, opts: RunOptions, summary: PlanSummary) -> dict[str, Any]:
    truth = prep.truth
    return {
        "dry_run": True,
        "events_planned": summary.events,
        "door_events_planned": sum(summary.door_events.values()),
        "heartbeats_planned": sum(summary.heartbeats.values()),
        "incidents_injected": sum(1 for r in truth if r.expected_alert is not None),
        "faults_injected": sum(1 for r in truth if r.expected_alert is None),
        "injections_skipped": list(prep.expansion.skipped[:50]),
        "run": {
            **_run_identity(opts, prep),
            "plan_digest": summary.digest,
            "plan_items": summary.kinds,
        },
    }


async def score_async(
    settings: Settings, truth_path: Path, token: str | None, speed: float | None
) -> dict[str, Any]:
    """Score an earlier run again from its truth file (and the sidecar next to it)."""
    truth = read_truth(truth_path)
    side_path = _sidecar(truth_path)
    side: dict[str, Any] = json.loads(side_path.read_text()) if side_path.exists() else {}
    households: dict[str, dict[str, str]] = side.get("households", {})
    household_ids = {h["household_id"] for h in households.values()} | {
        r.household_id for r in truth if r.household_id
    }
    tok = token or settings.api_token
    if not tok:
        raise SimulationError("scoring needs an operator token: ANSIM_API_TOKEN or --token")
    run_speed = speed or float(side.get("speed", 1.0))
    async with api_client(settings, tok) as api:
        alerts, alerts_api = await fetch_alerts(api, household_ids)
        states = await asyncio.gather(
            *(fetch_sensor(api, h["sensor_id"]) for h in households.values())
        )
    stored = sum(_stored(s) for s in states if s is not None)
    report = score_run(
        truth, alerts, events_sent=int(side.get("events_sent", stored)), events_stored=stored,
        household_weeks=float(side.get("household_weeks", 0.0)), speed=run_speed,
    )  # fmt: skip
    report["alerts_api"] = alerts_api
    if not side:
        report["note"] = f"no {side_path.name}: events_sent unknown, taken as events_stored"
    return report


def format_summary(report: dict[str, Any]) -> str:
    """A readable summary for the terminal."""
    run = report.get("run", {})
    lines = []
    if run:
        lines.append(
            f"simulation {run.get('scenario')}: {run.get('households')} households, "
            f"{run.get('days')} days from {str(run.get('start'))[:10]} at speed "
            f"{run.get('speed')}, seed {run.get('seed')}"
        )
    if report.get("dry_run"):
        lines.append(
            f"  planned: {report['events_planned']} events ({report['door_events_planned']} "
            f"door, {report['heartbeats_planned']} heartbeats), {report['incidents_injected']} "
            f"incidents, {report['faults_injected']} faults; digest {run.get('plan_digest')}"
        )
        return "\n".join(lines)
    lines.append(
        f"  events: sent {report['events_sent']}, stored {report['events_stored']}, "
        f"lost {report['events_lost']}"
        + (f", unexpected {report['events_unexpected']}" if report.get("events_unexpected") else "")
    )
    if "door_events_sent" in report:
        lines.append(
            f"          door {report['door_events_sent']}/{report['door_events_stored']} stored, "
            f"heartbeats {report['heartbeats_sent']}/{report['heartbeats_stored']}, "
            f"duplicates dropped {report['duplicates_dropped']}"
        )
    detected = {k: v for k, v in report["incidents_detected"].items() if v}
    lines.append(
        f"  incidents: injected {report['incidents_injected']}, detected "
        f"{report['incidents_detected_total']} {detected or ''}, missed "
        f"{report['incidents_missed']}"
    )
    for kind, st in sorted(report.get("incidents_by_kind", {}).items()):
        lines.append(
            f"    {kind:16} {st['detected']}/{st['injected']} detected, p50 latency "
            f"{st.get('latency_p50_s')} s"
        )
    lines.append(
        f"  alerts: {report['alerts_total']} ({report.get('alerts_api', 'ok')}), false alarms "
        f"{report['false_alarms']} = {report['false_alarms_per_household_week']} per "
        f"household-week {report['false_alarms_by_kind'] or ''}"
    )
    lines.append(
        f"  alert latency: p50 {report['alert_latency_p50_s']} s, p99 "
        f"{report['alert_latency_p99_s']} s ({report['latency_samples']} samples)"
    )
    if run.get("wall_s_publish") is not None:
        lines.append(
            f"  wall: {run['wall_s_total']} s total, publish {run['wall_s_publish']} s "
            f"({run.get('events_per_s_sent')} events/s), catch-up {run.get('catch_up_s')} s, "
            f"publisher lag max {run.get('publisher_lag_max_s')} s; broker ack p50 "
            f"{report.get('ack_latency_p50_ms')} ms, p99 {report.get('ack_latency_p99_ms')} ms"
        )
    if "load" in report:
        ld = report["load"]
        lines.append(
            f"  load: target {ld['target_rate']}/s, achieved {ld['achieved_rate']}/s over "
            f"{ld['wall_s']} s"
        )
    if report.get("faults_injected"):
        lines.append(f"  faults injected: {report['faults_injected']}")
    return "\n".join(lines)
