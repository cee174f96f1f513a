"""`ansim token create | list | revoke` against the running stack's database; a revoked
token is refused by the real API; no database where we look (the default ./data) is a
refusal, not a new one; a data directory named explicitly gets one, and says where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import ROOT, Stack


def ansim(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ansim", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_create_without_a_database_refuses_and_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIM_")}
    env["PYTHONPATH"] = str(ROOT)
    for args in (("create", "--role", "operator"), ("list",), ("revoke", "abcdef")):
        p = ansim(env, "token", *args, cwd=tmp_path)  # ANSIM_DATA_DIR unset: ./data
        assert p.returncode == 2, p
        assert f"no database at {tmp_path / 'data' / 'ansim.db'}" in p.stderr
        assert p.stdout == ""
        assert not (tmp_path / "data").exists()
    # list and revoke never create anything, even with the directory named
    elsewhere = tmp_path / "empty"
    env["ANSIM_DATA_DIR"] = str(elsewhere)
    for args in (("list",), ("revoke", "abcdef")):
        p = ansim(env, "token", *args)
        assert p.returncode == 2 and str(elsewhere / "ansim.db") in p.stderr
        assert not elsewhere.exists()
    # a data directory named explicitly (e.g. before the first `ansim up`, as SPEC's
    # `ansim token create --role operator`): created on purpose, and said where
    p = ansim(env, "token", "create", "--role", "operator")
    assert p.returncode == 0 and p.stdout.startswith("ansim_"), p.stderr
    assert f"created one at {elsewhere / 'ansim.db'}" in p.stderr
    assert (elsewhere / "ansim.db").is_file()
    # --init does the same from the default ./data
    del env["ANSIM_DATA_DIR"]
    p = ansim(env, "token", "create", "--role", "operator", "--init", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("ansim_"), p.stderr
    assert (tmp_path / "data" / "ansim.db").is_file()


def test_token_list_and_revoke(stack: Stack) -> None:
    env = {**os.environ, **stack.env}
    p = ansim(env, "token", "create", "--role", "operator", "--label", "night-shift")
    assert p.returncode == 0, p.stderr
    secret = p.stdout.strip()
    with stack.api(secret) as api:
        assert api.get("/api/v1/alerts").status_code == 200

    listed = ansim(env, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout and stack.operator_token not in listed.stdout
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:5] == ["id", "role", "household", "label", "created"]
    mine = [r for r in rows if "night-shift" in r]
    assert len(mine) == 1 and " operator " in mine[0] and "not tracked" in mine[0]
    token_id = mine[0].split()[0]
    assert len(token_id) == 12

    bad = ansim(env, "token", "revoke", "0000000000zz")
    assert bad.returncode == 2 and "hex digits" in bad.stderr
    revoked = ansim(env, "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert token_id in revoked.stdout
    with stack.api(secret) as api:
        r = api.get("/api/v1/alerts")
        assert r.status_code == 401, r.text
    # the other operator token still works; revoking twice is an error
    with stack.api() as api:
        assert api.get("/api/v1/alerts").status_code == 200
    again = ansim(env, "token", "revoke", token_id)
    assert again.returncode == 2 and "already revoked" in again.stderr
    relisted = ansim(env, "token", "list").stdout
    row = next(r for r in relisted.splitlines() if r.startswith(token_id))
    assert row.split()[5] != "-"  # the revoked column has a time
    assert stack.db_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'token.revoke'") == 1
    assert httpx.get(f"{stack.base_url}/healthz").status_code in (200, 503)
