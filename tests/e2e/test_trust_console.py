"""Issue 15 (trust) in the resident's console: the exit delay counted down, and a help
request that leaves her no "it was me" to press."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from simulator.device import VirtualSensor
from tests.e2e import test_console as console
from tests.e2e.test_console import WAIT_MS, publish, shot, sign_in, start_sensor
from tests.harness import Stack

# the console tests' fixtures (a stack of this module's own, the browser, sensors)
console_stack = console.console_stack
browser = console.browser
sensors = console.sensors
pytestmark = console.pytestmark


def test_resident_sees_the_exit_delay_count_down_and_help_stands(
    console_stack: Stack, browser: Browser, sensors: list[VirtualSensor]
) -> None:
    stack = console_stack
    with stack.api() as api:
        enrolled = stack.enrol(api, name="박서연", exit_delay_s=40)
        provisioned = stack.provision(api, enrolled["household_id"])
    sensor = start_sensor(stack, provisioned["sensor_id"], provisioned["mqtt"]["password"], sensors)
    publish(sensor, "heartbeat")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, stack, enrolled["token"])

    page.get_by_role("button", name="외출").click()
    countdown = page.get_by_test_id("exit-delay")
    expect(countdown).to_be_visible(timeout=WAIT_MS)
    first = countdown.inner_text()
    assert "초 안에 나가세요" in first
    seconds = int(first.split("초")[0])
    assert 35 <= seconds <= 40
    expect(countdown).not_to_have_text(first, timeout=5_000)  # it counts down
    shot(page, "trust-01-exit-delay")
    page.get_by_role("button", name="해제").click()
    expect(countdown).to_be_hidden()

    # a tamper offers no "it was me"; once she asked for help, no answer of hers is left
    publish(sensor, "tamper")
    tamper = page.locator("[data-testid=my-alert][data-kind=tamper]")
    expect(tamper).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    expect(tamper.get_by_test_id("answer-it-was-me")).to_have_count(0)
    tamper.get_by_role("button", name="도와주세요").click()
    expect(tamper.get_by_test_id("answer-help")).to_have_count(0, timeout=WAIT_MS)
    expect(tamper.get_by_role("status")).to_have_text("관제센터에 도움을 요청했습니다")
    shot(page, "trust-02-help-stands")
    context.close()
