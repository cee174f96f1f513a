"""Build and run `bench/loadgen.c`: the load generator that does not distort what it
measures (a few libmosquitto connections, one pacing thread, `ts` stamped at send, its
own send lag reported). Needs gcc and Debian's libmosquitto-dev (installed with apt
when missing and running as root)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "loadgen.c"


def binary() -> Path:
    """The compiled generator, rebuilt when the source changes."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(f"/tmp/ansim-loadgen-{digest}")
    if out.exists():
        return out
    if not Path("/usr/include/mosquitto.h").exists():
        apt = shutil.which("apt-get")
        if os.geteuid() != 0 or apt is None:
            sys.exit("bench needs libmosquitto-dev: sudo apt-get install libmosquitto-dev")
        print("[bench] installing libmosquitto-dev", flush=True)
        subprocess.run(
            [apt, "install", "-y", "-q", "libmosquitto-dev"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )
    cc = shutil.which("gcc") or shutil.which("cc") or "cc"
    subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(out), str(SOURCE), "-lmosquitto", "-lpthread"], check=True
    )
    return out


@dataclass(frozen=True, slots=True)
class Sent:
    sensor: int
    seq: int
    send_us: int
    puback_us: int  # 0: never acknowledged
    lag_us: int


@dataclass(frozen=True, slots=True)
class Run:
    sent: list[Sent]
    summary: str


def run(
    port: int,
    sensors: list[tuple[str, str]],
    rate: float,
    seconds: float,
    boot: int,
    workdir: Path,
    cafile: Path | None = None,
    burst: tuple[float, float] | None = None,
) -> Run:
    """Offer `rate` events/s for `seconds` (with `burst` = (rate, seconds) in the middle)."""
    workdir.mkdir(parents=True, exist_ok=True)
    users = workdir / "loadgen-sensors.txt"
    users.write_text("".join(f"{sid} {pw}\n" for sid, pw in sensors))
    out = workdir / "loadgen-out.txt"
    argv = [str(binary()), "127.0.0.1", str(port), str(cafile) if cafile else "-",
            str(rate), str(seconds), str(boot), str(users), str(out)]  # fmt: skip
    if burst:
        argv += [str(burst[0]), str(burst[1])]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stdout}")
    sent = []
    with out.open() as f:
        for line in f:
            a, b, c, d, e = (int(x) for x in line.split())
            sent.append(Sent(a, b, c, d, e))
    return Run(sent, proc.stdout.strip())
