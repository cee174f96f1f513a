"""`ansim up --demo`: a small fleet in real time, enrolled through the API like an
operator would, so the console and the API have live data."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from core.models import EventType
from core.settings import Settings
from simulator.device import VirtualSensor

log = logging.getLogger("ansim.demo")

# around Yeongdeungpo-gu (district bounding box lon 126.88–126.95, lat 37.48–37.55)
_BBOX = (126.8816, 37.4822, 126.9525, 37.5474)


def enrol_fleet(
    api: httpx.Client, n: int, rng: random.Random
) -> list[tuple[str, dict[str, object]]]:
    fleet = []
    for i in range(n):
        lon = rng.uniform(_BBOX[0], _BBOX[2])
        lat = rng.uniform(_BBOX[1], _BBOX[3])
        r = api.post(
            "/api/v1/households", json={"name": f"Demo household {i + 1}", "lat": lat, "lon": lon}
        )
        r.raise_for_status()
        hh = r.json()["household_id"]
        r = api.post(f"/api/v1/households/{hh}/sensors", json={})
        r.raise_for_status()
        fleet.append((hh, r.json()))
    return fleet


def run_demo(settings: Settings) -> int:
    if not settings.api_token:
        log.error("the demo fleet needs ANSIM_API_TOKEN (an operator token)")
        return 2
    rng = random.Random(20261121)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with httpx.Client(
        base_url=settings.api_base_url,
        headers={"Authorization": f"Bearer {settings.api_token}"},
        timeout=10,
    ) as api:
        fleet = enrol_fleet(api, settings.demo_households, rng)
    sensors = []
    for _hh, prov in fleet:
        mqtt_info = prov["mqtt"]
        assert isinstance(mqtt_info, dict)
        s = VirtualSensor(
            str(prov["sensor_id"]), settings.mqtt_host, int(mqtt_info["port"]),
            str(mqtt_info["password"]), boot=rng.randint(1, 20), battery=rng.uniform(40, 100),
            rssi=rng.randint(-85, -45),
        )  # fmt: skip
        s.start()
        sensors.append(s)
    log.info("demo fleet online", extra={"sensors": len(sensors)})
    zone = ZoneInfo(settings.timezone)
    next_heartbeat = {s.sensor_id: time.monotonic() + rng.uniform(1, 30) for s in sensors}
    next_door = {s.sensor_id: time.monotonic() + rng.uniform(5, 120) for s in sensors}
    while not stop.wait(1.0):
        now = time.monotonic()
        for s in sensors:
            if now >= next_heartbeat[s.sensor_id]:
                s.battery = max(0.0, s.battery - 0.01)
                s.publish(EventType.HEARTBEAT, datetime.now(zone))
                next_heartbeat[s.sensor_id] = now + settings.heartbeat_interval_s
            if now >= next_door[s.sensor_id]:
                s.publish(EventType.OPEN, datetime.now(zone))
                time.sleep(0.05)
                s.publish(EventType.CLOSE, datetime.now(zone))
                next_door[s.sensor_id] = now + rng.expovariate(1 / 300)
    for s in sensors:
        s.stop()
    return 0
