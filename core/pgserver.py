"""The project's own PostgreSQL 15 cluster, for development and tests (issue 10, item 4).

`PostgresProcess` runs Debian's `initdb`/`pg_ctl` (from `ANSIM_PG_BIN_DIR`, default
`/usr/lib/postgresql/15/bin`) on a cluster in `DATA_DIR/postgres`, never the packaged
system service, as `core/broker/mosquitto.py` runs the project's own mosquitto:

    DATA_DIR/postgres/            owned by the account that runs the server, mode 0700
        credentials.json          superuser name and generated password (mode 0600)
        pgdata/                   the cluster (initdb on first start)
        pgdata/ansim.conf         rewritten at every start: 127.0.0.1 only, the port,
                                  the unix socket directory
        run/                      the unix socket (never /var/run/postgresql)
        postgres.log              the server's log

The first start runs `initdb` (UTF-8, C locale, scram-sha-256 for every connection, a
superuser `ansim` with a generated password) and creates the database `ansim`. Every
start writes `ansim.conf`, runs `pg_ctl start -w` and waits until the server accepts a
password login on 127.0.0.1:port; `stop()` is `pg_ctl stop -m fast`. `url` is the
`postgresql://ansim:…@127.0.0.1:port/ansim` URL for `ANSIM_DATABASE_URL`.

Root: `initdb` and `postgres` refuse to run as root. Started as root, the server runs as
the unprivileged system account `ANSIM_PG_RUN_USER` (default `ansim-pg`, created with
`useradd --system` when absent, no home, no shell): `DATA_DIR/postgres` is chowned to it
and every `initdb`/`pg_ctl` runs as that user and group with no supplementary groups.
Every parent directory of `DATA_DIR/postgres` must then be searchable by that account
(pytest's `/tmp/pytest-of-root` and `/root` are not); `start()` says which one is not.
Started as any other user, the server runs as that user.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from core.credentials import new_password
from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger(__name__)

SUPERUSER = "ansim"
DATABASE = "ansim"
HOST = "127.0.0.1"
DEBIAN_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
TOOLS = ("initdb", "pg_ctl", "postgres", "pg_isready", "psql")
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def find_bin_dir(configured: Path | None = None) -> Path:
    """`ANSIM_PG_BIN_DIR` if set, else Debian's PostgreSQL 15 directory, else the
    directory of the `pg_ctl` on PATH."""
    if configured is not None:
        return configured
    if (DEBIAN_BIN_DIR / "pg_ctl").exists():
        return DEBIAN_BIN_DIR
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    return DEBIAN_BIN_DIR


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether 127.0.0.1:port cannot be bound (the same check the postmaster makes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


@dataclass(frozen=True, slots=True)
class PgCredentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class RunAccount:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def ensure_system_user(name: str) -> RunAccount:
    """The system account `name`, created (no home, no login shell) when absent."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        try:  # a concurrent start may have created it first
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(
                f"cannot create the system user {name!r} that runs PostgreSQL as root "
                f"({result.stderr.strip() or result.returncode}): create it, or set "
                "ANSIM_PG_RUN_USER to an existing unprivileged user"
            ) from None
        log.info("created system user %s (uid %d) to run PostgreSQL", name, entry.pw_uid)
    if entry.pw_uid == 0:
        raise ConfigError(f"ANSIM_PG_RUN_USER={name!r} is root: PostgreSQL refuses to run as root")
    return RunAccount(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _searchable_by(path: Path, account: RunAccount) -> bool:
    st = path.stat()
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == account.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


class PostgresProcess:
    """A PostgreSQL cluster in `data_dir/postgres` on 127.0.0.1:`port` (0: a free port,
    chosen at start)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        bin_dir: Path | None = None,
        run_user: str = "ansim-pg",
        start_timeout_s: float = 60.0,
    ) -> None:
        self.root = Path(data_dir).expanduser().resolve() / "postgres"
        self.port = port
        self.bin_dir = find_bin_dir(bin_dir)
        self.run_user = run_user
        self.start_timeout_s = start_timeout_s
        self.creds: PgCredentials | None = None
        self._account: RunAccount | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresProcess:
        return cls(
            settings.data_dir,
            settings.pg_port,
            bin_dir=settings.pg_bin_dir,
            run_user=settings.pg_run_user,
        )

    # paths -------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def url(self) -> str:
        """`postgresql://ansim:…@127.0.0.1:port/ansim` (after `start()`)."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        if self.creds is None or self.port == 0:
            raise ConfigError("PostgreSQL has not been started: no URL yet")
        user = quote(self.creds.username, safe="")
        password = quote(self.creds.password, safe="")
        return f"postgresql://{user}:{password}@{HOST}:{self.port}/{quote(database, safe='')}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from `postmaster.pid`, if the file is there."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None

    # lifecycle ---------------------------------------------------------------------
    def start(self) -> str:
        """initdb on first start, then `pg_ctl start`; returns `url` once the server
        accepts a password login. Raises ConfigError with the reason and the log's tail."""
        self._check_tools()
        self._resolve_account()
        self._prepare_root()
        self.creds = self._load_or_create_credentials()
        if self.is_running():
            raise ConfigError(
                f"a PostgreSQL server already runs on {self.pgdata} (pid {self.pid}): "
                "stop it first (PostgresProcess.stop or pg_ctl stop)"
            )
        if self.port == 0:
            self.port = free_loopback_port()
        if port_in_use(self.port):
            raise ConfigError(
                f"cannot start PostgreSQL: {HOST}:{self.port} is already in use by another "
                "process; stop it or set ANSIM_PG_PORT to a free port"
            )
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._write_conf()
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        result = self._run(
            [self._tool("pg_ctl"), "start", "-D", str(self.pgdata), "-l", str(self.log_file),
             "-w", "-t", str(int(self.start_timeout_s)), "-s"],
            timeout_s=self.start_timeout_s + 10,
        )  # fmt: skip
        if result.returncode != 0:
            raise ConfigError(
                f"PostgreSQL did not start on {HOST}:{self.port} "
                f"(pg_ctl exit {result.returncode}): {self._failure(result, offset)}"
            )
        try:
            self._wait_ready()
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        log.info("PostgreSQL %s listens on %s:%d (pid %s)", self.pgdata, HOST, self.port, self.pid)
        return self.url

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        self._resolve_account()
        result = self._run([self._tool("pg_ctl"), "status", "-D", str(self.pgdata)])
        return result.returncode == 0

    def stop(self, timeout_s: float = 30.0) -> None:
        """`pg_ctl stop -m fast` (then `-m immediate` if that does not finish); no-op when
        the server is not running."""
        if not self.pgdata.exists() or not self.is_running():
            return
        pid = self.pid
        for mode in ("fast", "immediate"):
            result = self._run(
                [self._tool("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", mode, "-w",
                 "-t", str(int(timeout_s)), "-s"],
                timeout_s=timeout_s + 10,
            )  # fmt: skip
            if result.returncode == 0:
                break
            log.warning("pg_ctl stop -m %s failed: %s", mode, result.stderr.strip())
        if pid is not None:
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                raise ConfigError(f"PostgreSQL (pid {pid}) is still running after pg_ctl stop")

    # internals ---------------------------------------------------------------------
    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _check_tools(self) -> None:
        missing = [name for name in TOOLS if not (self.bin_dir / name).exists()]
        if missing:
            raise ConfigError(
                f"PostgreSQL 15 not found in {self.bin_dir} (missing {', '.join(missing)}): "
                "install Debian's postgresql-15 (scripts/setup.sh does) or set ANSIM_PG_BIN_DIR"
            )
        if len(str(self.socket_dir / f".s.PGSQL.{self.port or 65535}")) > _SOCKET_PATH_MAX:
            raise ConfigError(
                f"the unix socket path under {self.socket_dir} is longer than "
                f"{_SOCKET_PATH_MAX} bytes: choose a shorter ANSIM_DATA_DIR"
            )

    def _resolve_account(self) -> None:
        if self._account is None and os.geteuid() == 0:
            self._account = ensure_system_user(self.run_user)

    def _own(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.uid, self._account.gid)

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        for path in (self.root, self.socket_dir):
            self._own(path)
            path.chmod(0o700)
        if self._account is None:
            return
        probe = self._run(["/usr/bin/test", "-w", str(self.root)])
        if probe.returncode == 0:
            return
        blocked = next(
            (p for p in reversed(self.root.parents) if not _searchable_by(p, self._account)),
            self.root,
        )
        raise ConfigError(
            f"the PostgreSQL user {self._account.name!r} cannot reach {self.root}: {blocked} "
            f"is not searchable by it (mode {stat.filemode(blocked.stat().st_mode)}); "
            f"allow it (chmod o+x {blocked}) or choose another ANSIM_DATA_DIR"
        )

    def _load_or_create_credentials(self) -> PgCredentials:
        path = self.credentials_file
        if path.exists():
            stored = json.loads(path.read_text())
        else:
            stored = {"username": SUPERUSER, "password": new_password()}
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(stored, f)
            tmp.rename(path)
        return PgCredentials(username=stored["username"], password=stored["password"])

    def _initdb(self) -> None:
        """Into a scratch directory renamed at the end, so a crash never leaves a
        half-initialised `pgdata`."""
        assert self.creds is not None
        scratch = self.root / "pgdata.init"
        if scratch.exists():
            shutil.rmtree(scratch)
        pwfile = self.root / "initdb.pw"
        pwfile.unlink(missing_ok=True)
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.creds.password + "\n")
        self._own(pwfile)
        try:
            result = self._run(
                [self._tool("initdb"), "-D", str(scratch), "-U", self.creds.username,
                 f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                 "--no-locale", "--no-instructions"],
                timeout_s=120,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ConfigError(
                f"initdb failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        with (scratch / "postgresql.conf").open("a") as f:
            f.write("\n# Ansim: listen address, port and socket, rewritten at every start\n")
            f.write("include_if_exists = 'ansim.conf'\n")
        scratch.rename(self.pgdata)
        log.info("initialised PostgreSQL cluster in %s", self.pgdata)

    def _write_conf(self) -> None:
        socket_dir = str(self.socket_dir).replace("'", "''")
        conf = self.pgdata / "ansim.conf"
        conf.write_text(
            "# written by core/pgserver.py at every start; edits are lost\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
        )
        self._own(conf)
        conf.chmod(0o600)

    def _run(
        self,
        argv: list[str],
        *,
        password: bool = False,
        timeout_s: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "HOME": str(self.root),
            "PGTZ": "UTC",
        }
        if password and self.creds is not None:
            env["PGPASSWORD"] = self.creds.password
        account = self._account
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            env=env,
            timeout=timeout_s,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )

    def _psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        assert self.creds is not None
        return self._run(
            [self._tool("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", HOST, "-p", str(self.port), "-U", self.creds.username, "-d", database,
             "-c", sql],
            password=True,
        )  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            result = self._run(
                [self._tool("pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-t", "2"]
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"PostgreSQL does not accept connections on {HOST}:{self.port} after "
                    f"{self.start_timeout_s} s: {self._log_tail()}"
                )
            time.sleep(0.1)

    def _ensure_database(self) -> None:
        found = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if found.returncode != 0:
            raise ConfigError(f"cannot log in to PostgreSQL: {found.stderr.strip()}")
        if found.stdout.strip() != "1":
            created = self._psql("postgres", f'CREATE DATABASE "{DATABASE}"')
            if created.returncode != 0:
                raise ConfigError(f"cannot create database {DATABASE}: {created.stderr.strip()}")

    def _log_tail(self, offset: int = 0, limit: int = 2000) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace").strip()
        except FileNotFoundError:
            return "(no log)"
        return text[-limit:] or "(empty log)"

    def _failure(self, result: subprocess.CompletedProcess[str], offset: int) -> str:
        said = (result.stderr or result.stdout).strip()
        return f"{said} | log {self.log_file}: {self._log_tail(offset)}"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no parent has reaped yet does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] not in ("Z", "X")
