"""`ansim up --demo`: the demo district and a small fleet living in real time.

1. If no street segments are imported yet, the generated demo district of
   Yeongdeungpo-gu (~60,000 10 m segments inside the real dong polygons,
   `core.district`) is imported through the API, as an operator would.
2. A fleet of `ANSIM_DEMO_HOUSEHOLDS` seeded personas is enrolled on those streets and
   lives its routines in real time against the live backend (`ansim simulate --speed 1`
   with the incident scenario), so the console has sensors, events and the odd alert.
"""

from __future__ import annotations

import logging

import httpx

from core.broker.tls import api_verify
from core.district import generate_district_geojson
from core.settings import REPO_ROOT, Settings

log = logging.getLogger("ansim.demo")

# the district's middle, around Yeongdeungpo-gu office
_PROBE_BBOX = "126.89,37.50,126.93,37.53"


def ensure_district(api: httpx.Client) -> int:
    """Import the demo district unless segments exist; returns segments imported."""
    r = api.get("/api/v1/segments", params={"bbox": _PROBE_BBOX})
    r.raise_for_status()
    if r.json().get("features"):
        return 0
    district = generate_district_geojson()
    log.info("importing the demo district", extra={"segments": len(district["features"])})
    r = api.post("/api/v1/segments/import", json=district, timeout=120)
    r.raise_for_status()
    return len(district["features"])


def run_demo(settings: Settings) -> int:
    if not settings.api_token:
        log.error("the demo fleet needs ANSIM_API_TOKEN (an operator token)")
        return 2
    with httpx.Client(
        base_url=settings.api_base_url,
        verify=api_verify(settings),
        headers={"Authorization": f"Bearer {settings.api_token}"},
        timeout=30,
    ) as api:
        imported = ensure_district(api)
    if imported:
        log.info("demo district imported", extra={"segments": imported})
    from simulator.__main__ import main as simulate

    scenario = REPO_ROOT / "scenarios" / "incident-month.yaml"
    return simulate(
        [
            "--households", str(settings.demo_households), "--days", "365", "--speed", "1",
            "--seed", "20261121", "--scenario", str(scenario),
            "--no-progress",
        ]
    )  # fmt: skip
