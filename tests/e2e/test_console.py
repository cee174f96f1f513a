"""The web console in a real browser (Debian's chromium, headless) against the real stack:
mosquitto, bridge, notifier and the API on free ports with a real SQLite file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from core.district import generate_district_geojson
from simulator.device import VirtualSensor
from tests.harness import ROOT, Stack

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
GRADE_COLOURS = {
    1: (26, 152, 80),
    2: (127, 191, 63),
    3: (230, 184, 0),
    4: (240, 124, 42),
    5: (215, 25, 28),
}
WAIT_MS = 15_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("console"),
        ANSIM_ENTRY_DELAY_S="1",
        ANSIM_ESCALATION_DELAY_S="600",
        ANSIM_RULES_TICK_MS="200",
        ANSIM_NOTIFY_BACKOFF_MAX_S="1",
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
    stack: Stack, sensor_id: str, password: str, started: list[VirtualSensor]
) -> VirtualSensor:
    sensor = VirtualSensor(sensor_id, "127.0.0.1", stack.mqtt_port, password, boot=1, battery=87)
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
