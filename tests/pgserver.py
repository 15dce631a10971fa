"""A real PostgreSQL server for the tests: Debian's ``postgresql``, in a temporary directory.

Each test session starts its own cluster (``initdb`` as the ``postgres`` user, trust
authentication, listening only on a unix socket in the cluster's directory) and stops it at
the end. Tests get a fresh schema each, named in the connection URL
(``options=-csearch_path=...``), so every test starts from an empty store without paying for
a new database. Nothing here is mocked: the backend talks to the server over libpq.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg

#: The system user Debian's package runs the server as (initdb refuses to run as root).
SERVER_USER = "postgres"


def server_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` (``make test`` installs the package)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql"
        )
    return found[-1].parent


class PostgresServer:
    """One throwaway cluster; :meth:`url` gives a store URL in a fresh schema."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="rfs-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self._schemas = itertools.count(1)
        user = pwd.getpwnam(SERVER_USER)
        self.socket_dir.mkdir()
        for path in (self.root, self.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        self._as_server(
            "initdb", "-D", str(self.data), "--auth=trust", "--username=postgres", "--no-sync", "-E", "UTF8"
        )
        self._as_server(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start",
            "-o", f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c max_connections=200",
        )  # fmt: skip

    def _as_server(self, program: str, *args: str) -> None:
        done = subprocess.run(
            ["setpriv", "--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups", str(self.bin / program), *args],
            capture_output=True, text=True, timeout=120, cwd=self.root,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr}{done.stdout}{log}")

    @property
    def admin_dsn(self) -> str:
        return f"host={self.socket_dir} user=postgres dbname=postgres"

    def url(self, schema: str | None = None) -> str:
        """A ``postgresql://`` store URL in ``schema`` (a new, empty one by default)."""
        schema = schema or self.new_schema()
        options = quote(f"-csearch_path={schema}")
        return f"postgresql:///postgres?host={quote(str(self.socket_dir))}&user=postgres&options={options}"

    def new_schema(self) -> str:
        name = f"t{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return name

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._as_server("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running() -> Iterator[PostgresServer]:
    """A server for the duration of the block."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()
