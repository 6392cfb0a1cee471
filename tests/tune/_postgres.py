"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, listening on
127.0.0.1 only (a free port; the Unix socket in the temporary folder), stopped and removed at
the end of the session. The server binaries come from the Debian package that `make setup`
installs; as root (initdb refuses to run as root) the server runs as the `postgres` user."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "honing"


def _bin_dir() -> Path:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        pytest.fail("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): run `make setup` "
                    "(installs the Debian package postgresql)", pytrace=False)
    newest = max(found, key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parts[-3])] or [0])
    return Path(newest).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, root: Path) -> None:
        self.bin = _bin_dir()
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self._as: list[str] = []
        self._n_databases = 0
        self.data.mkdir()
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root, and there is no `postgres` user to run the test PostgreSQL server "
                            "as: run `make setup` (the Debian package postgresql creates it)", pytrace=False)
            os.chmod(root, 0o755)  # traversable by the server's user
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str, timeout: float = 60) -> None:
        proc = subprocess.run([*self._as, *cmd], cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = self.data / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{tail}")

    def start(self, options: str = "") -> None:
        """initdb and start; ``options``: more server options, e.g. ``-c max_connections=200``."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                  "--no-sync", "--no-instructions")
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.data} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off {options}").strip()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def restart(self) -> None:
        """Stop (closing every client's connection) and start again on the same port and data."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-m", "fast",
                  "-w", "-t", "60", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        self._n_databases += 1
        name = f"test{self._n_databases}"
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if importlib.util.find_spec("psycopg2") is None:
        pytest.fail("the PostgreSQL driver psycopg2 is missing: run `make setup` (installs the test extra)",
                    pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="honing-pg-"))
    server = None
    try:
        server = PostgresServer(root)
        server.start()
        yield server
    finally:
        try:
            if server is not None:
                server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://honing@127.0.0.1:<port>/<db>``: a fresh database on the session's server."""
    return postgres_server.new_database()
