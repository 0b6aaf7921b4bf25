"""Prefect's embedded server, started so that the first run on a fresh or busy machine does not time out.

With no `PREFECT_API_URL`, Prefect starts a local server in a subprocess and
gives it `PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS` (20 s by default)
to answer. On an empty database that server first runs every migration, and
on a 2-core machine, or beside another run, that took longer: the run died
before it began. So `start_local_server` migrates the database first, in this
process and without a time limit, then starts the server with
`STARTUP_TIMEOUT_SECONDS` (unless the user set the variable), both under a
file lock in `PREFECT_HOME` so that two runs started at the same moment on one
home take turns instead of racing for the same SQLite file. Prefect's own
clients then find the server running (`SubprocessASGIServer` is one instance
per process).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pipelines.errors import KerasflowError

TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# Measured on 2 cores: 27 s for the first start on an empty database (10 s of it migrations), 8 s after; three
# times that beside another run using both cores.
STARTUP_TIMEOUT_SECONDS = 180
LOCK_FILE = "kerasflow-server-start.lock"


class ServerStartError(KerasflowError):
    """Prefect's local server did not start: one line saying what to do instead."""


def default_startup_timeout() -> None:
    """Give Prefect's embedded server `STARTUP_TIMEOUT_SECONDS` unless the user chose; before Prefect is imported."""
    os.environ.setdefault(TIMEOUT_VARIABLE, str(STARTUP_TIMEOUT_SECONDS))


def start_local_server() -> float | None:
    """Migrate and start Prefect's embedded server if this process will use it; seconds it took, or None when a
    server is configured (`PREFECT_API_URL`) or already running here."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_EPHEMERAL_ENABLED
    from prefect.server.api.server import SubprocessASGIServer

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    server = SubprocessASGIServer()
    if server.running:
        return None
    started = time.monotonic()
    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            migrate_database()
            server.start(timeout=int(os.environ.get(TIMEOUT_VARIABLE, STARTUP_TIMEOUT_SECONDS)))
        except Exception as exc:
            raise ServerStartError(
                f"Prefect's local server did not start ({str(exc).splitlines()[0][:200]}); on a slow or busy machine "
                f"raise {TIMEOUT_VARIABLE} (now {os.environ.get(TIMEOUT_VARIABLE)}), or start a server once "
                "(make ui) and set PREFECT_API_URL=http://127.0.0.1:4200/api") from exc
    return time.monotonic() - started


def migrate_database() -> None:
    """Create Prefect's database or bring it up to date (alembic; a no-op on a migrated one)."""
    from prefect.server.database import provide_database_interface
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(provide_database_interface().create_db())  # also from a notebook's running event loop
