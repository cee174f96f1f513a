"""`place_on_streets` (pure): seeded spots on the imported streets, whatever their order."""

from __future__ import annotations

from typing import Any

from simulator.personas import build_fleet
from simulator.run import place_on_streets


def _line(segment_id: str, *coords: tuple[float, float]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in coords]},
        "properties": {"segment_id": segment_id, "base_grade": 3},
    }


STREETS = [
    _line("a", (129.0, 35.0), (129.001, 35.0)),
    _line("b", (129.001, 35.0), (129.001, 35.001), (129.002, 35.001)),
    _line("c", (2.35, 48.85), (2.351, 48.85)),  # another street, in Paris
]


def test_no_segments_no_places() -> None:
    assert place_on_streets(build_fleet(3, 1), []) == {}


def test_every_household_on_a_piece_of_street_deterministically() -> None:
    fleet = build_fleet(40, 5)
    places = place_on_streets(fleet, STREETS)
    assert set(places) == {h.key for h in fleet}
    for lat, lon in places.values():
        on_a = lat == 35.0 and 129.0 <= lon <= 129.001
        on_b = (lon == 129.001 and 35.0 <= lat <= 35.001) or (
            lat == 35.001 and 129.001 <= lon <= 129.002
        )
        on_c = lat == 48.85 and 2.35 <= lon <= 2.351
        assert on_a or on_b or on_c, (lat, lon)
    # the order the API lists segments in does not matter; the seed does
    assert place_on_streets(fleet, list(reversed(STREETS))) == places
    assert place_on_streets(build_fleet(40, 6), STREETS) != places
    # a household's spot depends on her seed and index only, not on the fleet's size
    assert place_on_streets(fleet[:7], STREETS) == {h.key: places[h.key] for h in fleet[:7]}
    # spread by length: a and b (~290 m of the 366 m of street) get most of the 40
    assert sum(1 for lat, _ in places.values() if lat == 48.85) < 20
