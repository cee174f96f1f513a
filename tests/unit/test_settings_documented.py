"""Every setting is an `ANSIM_` variable with a documented default: each field of
`core.settings.Settings` has its own row in README's settings table."""

from __future__ import annotations

import re

from core.settings import Settings
from tests.harness import ROOT


def test_every_setting_has_a_readme_row() -> None:
    readme = (ROOT / "README.md").read_text()
    first_cells = re.findall(r"^\| (`ANSIM_[^|]*)\|", readme, flags=re.M)  # `A` / `B` rows too
    rows = {name for cell in first_cells for name in re.findall(r"`(ANSIM_[A-Z0-9_]+)`", cell)}
    missing = sorted(
        f"ANSIM_{name.upper()}"
        for name in Settings.model_fields
        if f"ANSIM_{name.upper()}" not in rows
    )
    assert not missing, f"settings without a README row: {missing}"
