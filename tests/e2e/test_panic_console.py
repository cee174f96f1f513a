"""Issue 14 item 11 (panic) in the resident's console: the help button, always there, sent
on a second tap, then what happens next in plain words and a 112 link."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from simulator.device import VirtualSensor
from tests.e2e import test_console as console
from tests.e2e.test_console import WAIT_MS, shot, sign_in
from tests.harness import Stack

console_stack = console.console_stack
browser = console.browser
sensors = console.sensors
pytestmark = console.pytestmark


def test_resident_help_button_needs_a_second_tap_and_says_what_happens_next(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    stack = console_stack
    with stack.api() as api:
        enrolled = stack.enrol(api, name="이하늘")
    hid = enrolled["household_id"]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, stack, enrolled["token"])

    button = page.get_by_test_id("help-button")
    expect(button).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("call-112")).to_have_attribute("href", "tel:112")
    button.click()  # the first tap only asks to confirm
    expect(button).to_have_text("한 번 더 누르면 관제센터에 알립니다")
    with stack.api() as api:
        assert api.get("/api/v1/alerts", params={"household_id": hid}).json()["data"] == []
    button.click()
    status = page.get_by_test_id("help-status")
    expect(status).to_contain_text("관제센터에 알렸습니다", timeout=WAIT_MS)
    with stack.api() as api:
        (alert,) = api.get("/api/v1/alerts", params={"household_id": hid}).json()["data"]
        assert alert["kind"] == "help" and alert["escalated"] is True
        shot(page, "panic-01-help-sent")
        # the centre acknowledges: she sees it
        r = api.post(f"/api/v1/alerts/{alert['alert_id']}/ack")
        assert r.status_code == 200, r.text
    expect(status).to_contain_text("관제센터가 확인했습니다", timeout=WAIT_MS)
    expect(page.get_by_test_id("mode-buttons")).to_be_visible()
    shot(page, "panic-02-help-seen")
    context.close()
