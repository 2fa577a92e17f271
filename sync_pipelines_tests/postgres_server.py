"""A real PostgreSQL for the tests: a throwaway cluster on 127.0.0.1, started and stopped by the tests.

PostgreSQL refuses to run as root: when the tests run as root, `initdb` and `pg_ctl` run as the `postgres` user
(`runuser`), in a folder that user owns. The cluster asks for a password (scram), like a real server: dlt's
credentials require one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg2

SUPERUSER = "sync_admin"
# Characters a URL must escape: a password is only ever handled quoted.
PASSWORD = "s3cret:P@ss/word%"  # noqa: S105 - a throwaway cluster's
START_TIMEOUT_SECONDS = 60


def bin_dir() -> Path:
    """Where `initdb` and `pg_ctl` are: on the PATH, else Debian's `pg_config --bindir` or /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(Path(out))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise RuntimeError("PostgreSQL is not installed: `.ci/run` installs it (apt-get install postgresql).")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One cluster: `url(db)` for a database in it, `create_database` for a fresh one per test."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = PASSWORD) -> str:
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg2.extensions.connection:
        con = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=PASSWORD, dbname=database, connect_timeout=5
        )
        con.autocommit = True
        return con

    def create_database(self, name: str) -> str:
        """A fresh empty database `name` (dropped first if it exists); its URL."""
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        pwfile.chmod(0o644)  # read by `postgres` (initdb), whatever the umask; removed once read
        _own(self.root)
        self._as_owner(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
        self._as_owner(
            [
                str(bin_dir() / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "start",
            ]  # fmt: skip
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                self.connect().close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_owner([str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _as_owner(self, command: list[str]) -> None:
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:6])} failed: {done.stderr or done.stdout}\n{self.log()[-2000:]}")


def _own(path: Path) -> None:
    """As root: the cluster's folder (and the temp folders above it) belong to, or are open to, `postgres`."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("postgres")
    os.chown(path, user.pw_uid, user.pw_gid)
    for parent in path.parents:
        if parent == Path(tempfile.gettempdir()) or parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o711)  # let `postgres` through, not read


@contextmanager
def running_postgres(root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
