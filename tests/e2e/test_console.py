"""The web console in a real browser (Debian's chromium, headless) against the real stack:
mosquitto, bridge, notifier and the API on free ports with a real SQLite file."""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from core.district import generate_district_geojson
from simulator.device import VirtualSensor
from tests.harness import ROOT, Stack, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
GRADE_COLOURS = {  # api/static/js/map.js
    1: (0x1F, 0x3A, 0x93),
    2: (0x2F, 0x8A, 0xC4),
    3: (0x85, 0x7F, 0x70),
    4: (0xB8, 0x74, 0x00),
    5: (0x8A, 0x00, 0x10),
}
WAIT_MS = 15_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("console"),
        ANSIM_ENTRY_DELAY_S="1",
        ANSIM_EXIT_DELAY_S="0",  # the door opens right after arming
        ANSIM_ESCALATION_DELAY_S="600",
        ANSIM_RULES_TICK_MS="200",
        ANSIM_NOTIFY_BACKOFF_MAX_S="1",
        ANSIM_NOTIFY_GIVE_UP_S="3",  # a webhook that never answers is failed after 3 s
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def sensors() -> Iterator[list[VirtualSensor]]:
    started: list[VirtualSensor] = []
    yield started
    for s in started:
        s.stop()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, stack: Stack, token: str) -> None:
    page.goto(stack.base_url)
    page.get_by_label("접근 토큰").fill(token)
    page.get_by_role("button", name="로그인").click()
    expect(page.get_by_role("button", name="로그아웃")).to_be_visible()


def start_sensor(
    stack: Stack,
    sensor_id: str,
    password: str,
    started: list[VirtualSensor],
    battery: float = 87,
) -> VirtualSensor:
    sensor = VirtualSensor(
        sensor_id, "127.0.0.1", stack.mqtt_port, password, boot=1, battery=battery
    )
    started.append(sensor)
    assert sensor.start(), sensor.refused
    return sensor


def publish(sensor: VirtualSensor, type_: str) -> None:
    sensor.publish(type_, datetime.now(UTC)).wait_for_publish(5)


def test_operator_enrols_sees_live_alert_and_resolves(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    stack = console_stack
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, stack, stack.operator_token)
    expect(page.get_by_test_id("whoami")).to_contain_text("operator")
    # this stack has no control-centre webhook: every operator page says so
    expect(page.get_by_test_id("no-centre-banner")).to_be_visible()
    expect(page.get_by_test_id("no-centre-banner")).to_contain_text("관제센터 웹훅")
    expect(page.get_by_role("link", name="알림 대기열")).to_have_attribute("aria-current", "page")

    # enrol a household, then a sensor: the secrets are shown once
    page.get_by_role("link", name="가구·기기 등록").click()
    page.get_by_label("이름(가구명)").fill("김안심")
    page.get_by_role("button", name="등록", exact=True).click()
    secrets = page.get_by_test_id("household-secrets")
    expect(secrets).to_be_visible()
    household_id = page.get_by_test_id("enrolled-household-id").inner_text()
    resident_token = page.get_by_test_id("resident-token").inner_text()
    assert household_id.startswith("hh-") and len(resident_token) > 20
    expect(page.get_by_role("textbox", name="가구 ID")).to_have_value(household_id)
    page.get_by_role("button", name="기기 발급").click()
    expect(page.get_by_test_id("sensor-secrets")).to_be_visible()
    sensor_id = page.get_by_test_id("provisioned-sensor-id").inner_text()
    password = page.get_by_test_id("mqtt-password").inner_text()
    assert page.get_by_test_id("mqtt-port").inner_text() == str(stack.settings.mqtt_tls_port)
    assert (page.get_by_test_id("mqtt-ca").text_content() or "").startswith("-----BEGIN")
    shot(page, "01-operator-enrolment")
    # hiding drops them from the page
    page.get_by_test_id("sensor-secrets").get_by_role(
        "button", name="저장했습니다 — 숨기기"
    ).click()
    secrets.get_by_role("button", name="저장했습니다 — 숨기기").click()
    expect(page.get_by_test_id("mqtt-password")).to_have_count(0)
    expect(page.get_by_test_id("resident-token")).to_have_count(0)

    # the queue is live: a tamper event shows up without a reload
    page.get_by_role("link", name="알림 대기열").click()
    expect(page.get_by_test_id("live-status")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    sensor = start_sensor(stack, sensor_id, password, sensors)
    publish(sensor, "tamper")
    row = page.get_by_test_id("alert-row").filter(has_text=sensor_id)
    expect(row).to_have_attribute("data-kind", "tamper", timeout=WAIT_MS)
    expect(row).to_have_attribute("data-state", "open")
    shot(page, "02-operator-live-alert")

    row.get_by_role("button", name="확인", exact=True).click()
    expect(row).to_have_attribute("data-state", "acknowledged")
    row.get_by_role("button", name="실제 상황으로 종료").click()
    # resolved alerts leave the default (active) view; show them all
    expect(page.get_by_test_id("alert-row").filter(has_text=sensor_id)).to_have_count(0)
    page.get_by_label("상태").select_option("")
    expect(row).to_have_attribute("data-state", "resolved")
    expect(row.get_by_test_id("alert-state")).to_contain_text("실제 상황")
    alert_id = row.get_attribute("data-alert-id")
    with stack.api() as api:
        alert = api.get(f"/api/v1/alerts/{alert_id}").json()
    assert alert["state"] == "resolved" and alert["resolution"] == "confirmed"

    # the fleet shows the sensor online, its battery, and the tamper; the filter works
    page.get_by_role("link", name="기기 현황").click()
    fleet_row = page.get_by_test_id("fleet-row").filter(has_text=sensor_id)
    expect(fleet_row).to_have_attribute("data-status", "online", timeout=WAIT_MS)
    expect(fleet_row).to_contain_text("87%")
    page.get_by_label("훼손 감지").check()
    expect(page.get_by_test_id("fleet-row")).to_have_count(1)
    page.get_by_label("배터리 부족").check()
    expect(page.get_by_test_id("fleet-empty")).to_be_visible()
    page.get_by_label("배터리 부족").uncheck()
    expect(page.get_by_test_id("fleet-row")).to_have_count(1)
    shot(page, "03-operator-fleet")

    # the audit log tells who did it
    page.get_by_role("link", name="감사 로그").click()
    expect(page.get_by_test_id("audit-row").filter(has_text="household.enrol")).to_have_count(1)
    expect(page.get_by_test_id("audit-row").filter(has_text="sensor.provision")).to_contain_text(
        sensor_id
    )

    # English on request
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("link", name="Audit log")).to_be_visible()
    page.get_by_role("button", name="한국어").click()
    expect(page.get_by_role("link", name="감사 로그")).to_be_visible()
    page.close()


def test_resident_on_a_phone_arms_away_and_answers(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    stack = console_stack
    with stack.api() as api:
        enrolled = stack.enrol(api, name="이하나")
        provisioned = stack.provision(api, enrolled["household_id"])
    household_id, token = enrolled["household_id"], enrolled["token"]
    sensor = start_sensor(stack, provisioned["sensor_id"], provisioned["mqtt"]["password"], sensors)
    publish(sensor, "heartbeat")

    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    sign_in(page, stack, token)
    expect(page.get_by_role("heading", name="우리 집 · 이하나")).to_be_visible()
    my_sensor = page.get_by_test_id("my-sensor")
    expect(my_sensor).to_have_attribute("data-status", "online", timeout=WAIT_MS)
    expect(my_sensor.get_by_test_id("sensor-battery")).to_have_text("87%")
    # operator-only parts are not there
    expect(page.get_by_role("link", name="기기 현황")).to_be_hidden()

    page.get_by_role("button", name="외출").click()
    expect(page.get_by_role("button", name="외출")).to_have_attribute("aria-pressed", "true")
    with stack.api(token) as api:
        assert api.get(f"/api/v1/households/{household_id}").json()["mode"] == "away"
    expect(page.get_by_test_id("live-status")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    shot(page, "04-resident-armed-away")

    # the door opens while away: after the entry delay an intrusion alert arrives live
    publish(sensor, "open")
    intrusion = page.locator("[data-testid=my-alert][data-kind=intrusion]")
    expect(intrusion).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    shot(page, "05-resident-alert")
    intrusion.get_by_role("button", name="제가 열었어요").click()
    expect(intrusion).to_have_attribute("data-state", "resolved")
    alert_id = intrusion.get_attribute("data-alert-id")
    with stack.api(token) as api:
        alert: dict[str, Any] = api.get(f"/api/v1/alerts/{alert_id}").json()
    assert alert["resolution"] == "false_alarm"

    # a tamper: she asks for help, and the alert is escalated to the control centre
    publish(sensor, "tamper")
    tamper = page.locator("[data-testid=my-alert][data-kind=tamper]")
    expect(tamper).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    tamper.get_by_role("button", name="도와주세요").click()
    expect(tamper.get_by_test_id("alert-escalated")).to_be_visible()
    with stack.api(token) as api:
        tamper_alert = api.get(f"/api/v1/alerts/{tamper.get_attribute('data-alert-id')}").json()
    assert tamper_alert["escalated"] is True
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "06-resident-help")
    context.close()


def test_map_draws_segments_by_grade_and_explains_a_click(
    console_stack: Stack, browser: Browser
) -> None:
    stack = console_stack
    with stack.api() as api:
        r = api.post(
            "/api/v1/segments/import", json=generate_district_geojson(target_segments=2000)
        )
        assert r.status_code == 200, r.text
        assert api.post("/api/v1/grades/recompute").status_code == 200
        published = api.get("/api/v1/segments").json()["features"]
    by_id = {f["properties"]["segment_id"]: f["properties"] for f in published}

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, stack, stack.operator_token)
    page.get_by_role("link", name="구역 지도").click()
    canvas = page.get_by_test_id("map-canvas")
    expect(canvas).to_have_attribute("data-loaded", str(len(by_id)), timeout=WAIT_MS)
    page.wait_for_function(
        "window.ansimMap && Number(document.querySelector('canvas').dataset.drawn) > 0"
    )
    stats = page.evaluate("window.ansimMap.stats()")
    assert sum(stats.values()) > len(by_id) * 0.9 and sum(1 for n in stats.values() if n) >= 3

    shot(page, "07-map")

    # zoomed in on one segment: its pixels have its grade's colour, a click explains it
    changed = [i for i, p in by_id.items() if p["grade"] != p["base_grade"]]
    target_id = (changed or sorted(by_id))[0]
    target = page.evaluate(
        """(id) => {
        window.ansimMap.focus(id);
        window.ansimMap.drawNow();
        const c = document.querySelector('canvas'), r = c.getBoundingClientRect();
        const x = r.width / 2, y = r.height / 2, d = window.devicePixelRatio || 1;
        const px = c.getContext('2d').getImageData(Math.round(x * d), Math.round(y * d), 1, 1).data;
        return {x, y, hit: window.ansimMap.hit(x, y), rgb: [px[0], px[1], px[2]]};
    }""",
        target_id,
    )
    assert target["hit"] == target_id, target
    expected = GRADE_COLOURS[by_id[target_id]["grade"]]
    assert all(abs(a - b) <= 12 for a, b in zip(target["rgb"], expected, strict=True)), target
    target["id"] = target_id

    canvas.click(position={"x": target["x"], "y": target["y"]})
    panel = page.get_by_test_id("segment-panel")
    expect(panel.get_by_test_id("segment-id")).to_have_text(target["id"])
    expect(panel.get_by_test_id("segment-explanation")).to_have_text(
        by_id[target["id"]]["explanation"]
    )
    expect(panel.get_by_test_id("segment-history")).to_be_visible()
    shot(page, "08-map-segment")

    page.get_by_role("radio", name="기본 등급").check()
    assert page.evaluate("window.ansimMap.layer()") == "base_grade"
    page.get_by_role("button", name="확대").click()
    expect(canvas).to_have_attribute("data-loaded", str(len(by_id)))
    page.close()


def test_api_docs_work_without_internet(console_stack: Stack, browser: Browser) -> None:
    """A district PC without outside access: every request off our server is refused,
    and /docs still shows the API (Swagger UI served from our own files)."""
    page = browser.new_page()
    outside: list[str] = []

    def only_ours(route: Any) -> None:
        if route.request.url.startswith(console_stack.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(f"{console_stack.base_url}/docs")
    expect(page.get_by_text("/api/v1/households", exact=True).first).to_be_visible(timeout=15000)
    assert outside == [], outside
    page.close()


URGENT_KINDS = {"intrusion", "night_opening", "door_left_open", "tamper"}  # js/feed.js


def open_urgent(stack: Stack) -> int:
    with stack.api() as api:
        r = api.get("/api/v1/alerts", params={"state": "open", "limit": 1000})
    return sum(1 for a in r.json()["data"] if a["kind"] in URGENT_KINDS)


def enrol_on_a_street(stack: Stack, api: Any, name: str) -> dict[str, Any]:
    """Enrol at the default place, or (once the map test imported a district, when a home
    must be within 50 m of a street) on the first imported segment."""
    features = api.get("/api/v1/segments").json()["features"]
    if not features:
        return stack.enrol(api, name=name)
    lon, lat = features[0]["geometry"]["coordinates"][0][:2]
    return stack.enrol(api, name=name, lat=lat, lon=lon)


def enrolled_sensor(
    stack: Stack, name: str, started: list[VirtualSensor], battery: float = 87
) -> tuple[dict[str, Any], VirtualSensor]:
    with stack.api() as api:
        household = enrol_on_a_street(stack, api, name)
        provisioned = stack.provision(api, household["household_id"])
    sensor = start_sensor(
        stack, provisioned["sensor_id"], provisioned["mqtt"]["password"], started, battery
    )
    return household, sensor


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "[data-testid=alert-row]", "rows => rows.map(r => r.dataset.alertId)"
    )
    return ids


def test_queue_puts_help_and_intrusion_above_maintenance_and_counts_in_title(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    stack = console_stack
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["notifications"]
    )
    page = context.new_page()
    sign_in(page, stack, stack.operator_token)
    expect(page.get_by_test_id("live-status")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    assert page.evaluate("window.ansimAttention") == {"beeps": 0, "notifications": 0}
    page.get_by_label("새 긴급 알림 소리").check()  # a user gesture: the beep may play
    beeps = page.evaluate("window.ansimAttention.beeps")
    assert beeps == 1  # the toggle's own test beep
    page.get_by_label("데스크톱 알림").check()
    expect(page.get_by_label("데스크톱 알림")).to_be_checked()

    # maintenance first in time: a low battery ...
    _low, low_sensor = enrolled_sensor(stack, "박서연", sensors, battery=12)
    publish(low_sensor, "heartbeat")
    battery_row = page.get_by_test_id("maintenance-queue").get_by_test_id("alert-row")
    battery_row = battery_row.filter(has_text="박서연")
    expect(battery_row).to_have_attribute("data-kind", "battery_low", timeout=WAIT_MS)
    assert page.evaluate("window.ansimAttention.beeps") == beeps  # maintenance is quiet
    # ... then an intrusion (armed away, the door opens) ...
    away, away_sensor = enrolled_sensor(stack, "최지우", sensors)
    with stack.api(away["token"]) as api:
        r = api.put(f"/api/v1/households/{away['household_id']}/mode", json={"mode": "away"})
        assert r.status_code == 200, r.text
    publish(away_sensor, "open")
    intrusion = page.get_by_test_id("alert-queue").get_by_test_id("alert-row")
    intrusion = intrusion.filter(has_text="최지우")
    expect(intrusion).to_have_attribute("data-kind", "intrusion", timeout=WAIT_MS)
    # ... and a tamper that the resident answers with "help"
    helped, helped_sensor = enrolled_sensor(stack, "정민지", sensors)
    publish(helped_sensor, "tamper")
    tamper = page.get_by_test_id("alert-row").filter(has_text="정민지")
    expect(tamper).to_have_attribute("data-kind", "tamper", timeout=WAIT_MS)
    tamper_id = tamper.get_attribute("data-alert-id")
    with stack.api(helped["token"]) as api:
        r = api.post(f"/api/v1/alerts/{tamper_id}/answer", json={"answer": "help"})
        assert r.status_code == 200, r.text
    expect(tamper).to_have_attribute("data-help", "true", timeout=WAIT_MS)
    expect(tamper.get_by_test_id("help-badge")).to_have_text("도움 요청")
    expect(tamper.get_by_test_id("alert-answer")).to_have_attribute("data-answer", "help")
    expect(tamper.get_by_test_id("alert-escalated")).to_be_visible()

    # the order: help, then intrusion (in the urgent list), the battery apart and below
    ids = row_ids(page)
    intrusion_id = intrusion.get_attribute("data-alert-id")
    battery_id = battery_row.get_attribute("data-alert-id")
    assert ids.index(tamper_id) < ids.index(intrusion_id) < ids.index(battery_id), ids
    urgent_ids = page.get_by_test_id("alert-queue").evaluate(
        "q => [...q.querySelectorAll('[data-testid=alert-row]')].map(r => r.dataset.alertId)"
    )
    assert battery_id not in urgent_ids and tamper_id in urgent_ids
    assert all(
        page.locator(f"[data-alert-id='{i}']").get_attribute("data-help") == "true"
        or page.locator(f"[data-alert-id='{i}']").get_attribute("data-kind") == "intrusion"
        for i in urgent_ids[: urgent_ids.index(intrusion_id)]
    ), "only help requests and intrusions above this intrusion"

    # each row: who, what, how long ago (ticking), the escalation state, the answer
    expect(intrusion.get_by_test_id("alert-household")).to_have_text("최지우")
    expect(intrusion.get_by_test_id("alert-state")).to_have_text("처리 대기")
    # not escalated yet: the countdown to the automatic escalation (the API's escalate_due_at)
    expect(intrusion.get_by_test_id("alert-countdown")).to_have_text(
        re.compile(r"자동 이관까지 \d+:\d\d|곧 자동 이관")
    )
    expect(intrusion.get_by_test_id("alert-answer")).to_have_text("거주자 응답 없음")
    expect(intrusion.get_by_test_id("alert-ago")).to_have_text(re.compile(r"방금|\d+초 전"))
    expect(intrusion.get_by_test_id("alert-ago")).to_have_text(
        re.compile(r"\d+초 전"), timeout=WAIT_MS
    )

    # attention: the tab title counts open urgent alerts; new urgent ones beeped
    expect(page).to_have_title(f"({open_urgent(stack)}) 안심 도어", timeout=WAIT_MS)
    assert page.evaluate("window.ansimAttention.beeps") >= beeps + 3  # intrusion, tamper, help
    assert page.evaluate("window.ansimAttention.notifications") >= 3
    before = open_urgent(stack)
    intrusion.get_by_role("button", name="확인", exact=True).click()
    expect(intrusion).to_have_attribute("data-state", "acknowledged")
    assert open_urgent(stack) == before - 1
    expect(page).to_have_title(f"({before - 1}) 안심 도어")
    shot(page, "09-queue-order")

    page.get_by_role("button", name="English").click()
    expect(tamper.get_by_test_id("help-badge")).to_have_text("HELP REQUESTED")
    expect(intrusion.get_by_test_id("alert-ago")).to_have_text(re.compile(r"\d+ (sec|min) ago"))
    expect(page).to_have_title(f"({before - 1}) Ansim Door")
    shot(page, "10-queue-order-en")
    page.get_by_role("button", name="한국어").click()
    context.close()


def test_failed_delivery_is_a_red_warning_on_the_alert(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    """The household's webhook points at a port where nothing listens: every attempt is
    refused, the notifier gives up, and the alert says so in red."""
    stack = console_stack
    dead_hook = f"http://127.0.0.1:{free_port()}/hook"
    with stack.api() as api:
        features = api.get("/api/v1/segments").json()["features"]
        at = {}
        if features:
            lon, lat = features[0]["geometry"]["coordinates"][0][:2]
            at = {"lat": lat, "lon": lon}
        household = stack.enrol(api, name="윤하늘", webhook_url=dead_hook, **at)
        provisioned = stack.provision(api, household["household_id"])
    sensor = start_sensor(stack, provisioned["sensor_id"], provisioned["mqtt"]["password"], sensors)
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, stack, stack.operator_token)
    publish(sensor, "tamper")
    row = page.get_by_test_id("alert-row").filter(has_text="윤하늘")
    expect(row).to_have_attribute("data-kind", "tamper", timeout=WAIT_MS)
    warning = row.get_by_test_id("delivery-failed")
    expect(warning).to_be_visible(timeout=30_000)
    expect(warning).to_have_text(re.compile(r"알림 발송 실패 \d+건"))
    colour = warning.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour == "rgb(192, 38, 45)", colour  # --danger
    with stack.api() as api:
        notes = api.get(f"/api/v1/alerts/{row.get_attribute('data-alert-id')}/notifications")
    assert any(n["state"] == "failed" for n in notes.json()["data"]), notes.text
    shot(page, "12-delivery-failed")
    page.close()


def test_alert_open_and_sensor_unknown_have_distinct_words(
    console_stack: Stack, browser: Browser
) -> None:
    stack = console_stack
    with stack.api() as api:
        household = enrol_on_a_street(stack, api, "한가람")
        never_seen = stack.provision(api, household["household_id"])["sensor_id"]
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, stack, stack.operator_token)
    # no word means two things: state, status, kind, resolution and mode texts all differ
    clashes = page.evaluate(
        """async () => {
        const { DICTIONARY } = await import('/static/js/i18n.js');
        const out = [];
        for (const [lang, dict] of Object.entries(DICTIONARY)) {
            const seen = new Map();
            for (const [k, v] of Object.entries(dict)) {
                if (!/^(state|status|kind|res|mode)_/.test(k)) continue;
                const prev = seen.get(v);
                if (prev && prev.split('_')[0] !== k.split('_')[0]) out.push([lang, prev, k, v]);
                seen.set(v, k);
            }
        }
        return out;
    }"""
    )
    assert clashes == [], clashes
    words = page.evaluate(
        """async () => {
        const { DICTIONARY: d } = await import('/static/js/i18n.js');
        return [d.ko.state_open, d.ko.status_unknown, d.en.state_open, d.en.status_unknown];
    }"""
    )
    assert words == ["처리 대기", "상태 모름", "Awaiting action", "Status unknown"]
    assert "미확인" not in (ROOT / "api/static/js/i18n.js").read_text()

    page.get_by_role("link", name="기기 현황").click()
    row = page.get_by_test_id("fleet-row").filter(has_text=never_seen)
    expect(row).to_have_attribute("data-status", "unknown", timeout=WAIT_MS)
    expect(row).to_contain_text("상태 모름")
    page.get_by_role("link", name="알림 대기열").click()
    expect(page.get_by_label("상태")).to_contain_text("처리 대기")
    page.close()


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    hi, lo = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_map_legend_colours_have_contrast_and_numbers(
    console_stack: Stack, browser: Browser
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, console_stack, console_stack.operator_token)
    page.get_by_role("link", name="구역 지도").click()
    items = page.get_by_test_id("legend-item")
    expect(items).to_have_count(5)
    legend = page.evaluate(
        """() => {
        const rgb = (s) => s.match(/\\d+/g).slice(0, 3).map(Number);
        const bg = getComputedStyle(document.querySelector('[data-testid=map-canvas]'));
        return {
            background: rgb(bg.backgroundColor),
            items: [...document.querySelectorAll('[data-testid=legend-item]')].map((el) => ({
                grade: Number(el.dataset.grade),
                text: el.textContent,
                swatch: rgb(getComputedStyle(el.querySelector('.swatch')).backgroundColor),
            })),
        };
    }"""
    )
    background = tuple(legend["background"])
    assert background == (0xF4, 0xF1, 0xEA)
    ratios = {}
    for item in legend["items"]:
        grade, swatch = item["grade"], tuple(item["swatch"])
        assert swatch == GRADE_COLOURS[grade], item  # the legend is the map's scale
        assert str(grade) in item["text"], item  # the number is shown, not colour alone
        ratios[grade] = round(contrast(swatch, background), 2)  # type: ignore[arg-type]
    assert sorted(ratios) == [1, 2, 3, 4, 5]
    assert all(r >= 3.0 for r in ratios.values()), ratios
    page.close()


def test_live_indicator_tells_when_the_stream_goes_silent(
    console_stack: Stack, browser: Browser
) -> None:
    """The API process is frozen (SIGSTOP: the socket stays open, nothing arrives, not even
    keep-alives): after 2x the keep-alive interval the console says the connection is lost,
    and it is live again once the API runs on."""
    stack = console_stack
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    sign_in(page, stack, stack.operator_token)
    live = page.get_by_test_id("live-status")
    expect(live).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.get_by_test_id("alerts-view")).to_have_attribute("data-loaded", "true")
    api_proc = stack.procs["api"]
    api_proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        expect(live).to_have_attribute("data-state", "lost", timeout=45_000)
        silent_s = time.monotonic() - stopped
        expect(live).to_have_text("연결 끊김 — 재연결 중…")
        expect(page.get_by_test_id("queue-stale")).to_be_visible()
        shot(page, "11-connection-lost")
    finally:
        api_proc.send_signal(signal.SIGCONT)
    # keep-alives every 15 s: not before 15 s of silence, by 2x15 s (+ the 1 s check)
    assert 15 <= silent_s <= 40, silent_s
    expect(live).to_have_attribute("data-state", "live", timeout=40_000)
    expect(live).to_have_text("실시간 연결됨")
    expect(page.get_by_test_id("queue-stale")).to_have_count(0)
    page.close()
