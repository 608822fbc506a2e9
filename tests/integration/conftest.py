"""The real parts: the sandboxed Asterisk, the backend (`hotline serve`), Redis, SQL, sipp.

The database is SQLite unless HOTLINE_TEST_DB=postgresql (then HOTLINE_TEST_PG_URL);
the test command runs the suite once with each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.config import load_settings

REPO = Path(__file__).resolve().parents[2]
WEB_PORT = 18080
AGI_PORT = 14573
# The tests run as if it were this Monday morning in Shanghai (the clock keeps running from
# it): service hours and shifts never depend on the hour CI runs (DESIGN principle 5).
HARNESS_TIME = datetime.fromisoformat("2026-11-30T10:00:00+08:00")


def clock_offset_for(local: datetime) -> float:
    """The clock offset that makes the backend's "now" this instant."""
    return local.timestamp() - time.time()


# One counter for the whole session: callers of different test modules never share a
# number (a test finds its call, incident or alert by the caller's number).
_caller_numbers = itertools.count(int(time.time()) % 100000 * 100)


def unique_caller_number(prefix: str = "136") -> str:
    """A caller's number no other call of this test session has."""
    return f"{prefix}{next(_caller_numbers) % 10**8:08d}"


def eventually(check: Callable[[], Any], *, timeout: float = 10, what: str = "") -> Any:
    """The first truthy answer of `check`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")


def _database_url(var_dir: Path) -> str:
    if os.environ.get("HOTLINE_TEST_DB", "sqlite") == "postgresql":
        return os.environ.get("HOTLINE_TEST_PG_URL",
                              "postgresql://postgres@127.0.0.1:5432/hotline_test")
    return f"sqlite:///{var_dir / 'integration.sqlite3'}"


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from hotline.db.engine import create_sync_engine_for
    from hotline.db.models import Base

    engine = create_sync_engine_for(url)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


class Backend:
    """`hotline serve` as a child process, stoppable and restartable by tests."""

    def __init__(self, env: dict[str, str], log_path: Path, token: str) -> None:
        self.env = env
        self.log_path = log_path
        self.token = token  # the demo admin's API token (`hotline users token admin`)
        self.process: subprocess.Popen[bytes] | None = None
        self.settings = load_settings()

    def launch(self, **overrides: str) -> None:
        """Start `hotline serve` without waiting for it to be healthy."""
        env = {**self.env, **overrides}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "hotline.cli", "serve"], env=env,
                                        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def start(self, **overrides: str) -> None:
        self.launch(**overrides)
        try:
            self.wait_healthy()
        except BaseException:
            # A backend that never became healthy would hold the ports for the next run.
            self.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def settings_snapshot_dir(self) -> Path:
        """Where the classic AGI fallback reads the published rules (inside the chroot)."""
        from hotline.rules.snapshot_files import snapshot_directory

        return snapshot_directory(self.settings)

    def voicemail_spool(self, site: str) -> Path:
        """Where the sandboxed Asterisk records a site's messages, seen from the host."""
        spool = self.settings.asterisk.voicemail_spool.lstrip("/")
        return Path(self.settings.asterisk.chroot_dir).expanduser() / spool / site

    def now(self) -> datetime:
        """The backend's clock (the harness's offset from real time)."""
        offset = float(self.env.get("HOTLINE_CLOCK__OFFSET_SECONDS", "0"))
        return datetime.now(UTC) + timedelta(seconds=offset)

    def sandbox(self) -> Any:
        from hotline.asterisk.sandbox import AsteriskSandbox

        return AsteriskSandbox(settings=self.settings.asterisk, ami=self.settings.ami,
                               var_dir=self.settings.var_dir)

    def asterisk(self, command: str) -> str:
        """An Asterisk CLI command in the sandbox."""
        return str(self.sandbox().cli(command))

    @property
    def carrier_log(self) -> Path:
        """Every SIP message the simulated carrier saw."""
        return Path(self.sandbox().carrier_log)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Rows of a read-only SQL statement on the backend's database."""
        from sqlalchemy import text

        from hotline.db.engine import create_sync_engine_for

        engine = create_sync_engine_for(self.env["HOTLINE_DATABASE__URL"])
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(statement), params).all())
        finally:
            engine.dispose()

    def audit(self, action: str) -> list[dict[str, Any]]:
        """The audit log's entries of one action, newest first (read from the database)."""
        from sqlalchemy import select

        from hotline.db.engine import create_sync_engine_for
        from hotline.db.models import AuditEntry

        engine = create_sync_engine_for(self.env["HOTLINE_DATABASE__URL"])
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(AuditEntry.actor, AuditEntry.target,
                                                 AuditEntry.after)
                                          .where(AuditEntry.action == action)
                                          .order_by(AuditEntry.id.desc())).all()
        finally:
            engine.dispose()
        return [{"actor": r[0], "target": r[1], "after": r[2]} for r in rows]

    def queue_members(self, queue: str) -> dict[str, str]:
        """What Asterisk says about each member of a queue: interface → its `queue show` line."""
        members = {}
        for line in self.asterisk(f"queue show {queue}").splitlines():
            if "(PJSIP/" in line:
                interface = line.split("(", 1)[1].split(" ", 1)[0].rstrip(")")
                members[interface] = line.strip()
        return members

    def counsellor_ids(self) -> dict[str, int]:
        status, page = self.api("/api/counsellors")
        assert status == 200, page
        return {item["sip_username"]: item["id"] for item in page["items"]}

    def restart(self, **overrides: str) -> None:
        """Stop and start again with other settings (a clock, a disabled FastAGI server)."""
        self.stop()
        self.start(**overrides)

    def api_bytes(self, path: str) -> tuple[int, bytes]:
        """A GET whose answer is a file (audio)."""
        request = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}{path}")
        request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def api(self, path: str, *, token: bool = True, method: str = "GET",
            body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}{path}", data=data,
                                         method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def wait_healthy(self, timeout: float = 60,
                     components: tuple[str, ...] = ("ami", "queues")) -> dict[str, Any]:
        """Until AMI is up and the queues' members follow the roster."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"backend exited: {self.log_path.read_text()[-3000:]}")
            try:
                _status, last = self.api("/api/health", token=False)
                if all(last["components"][name]["status"] == "ok" for name in components):
                    return dict(last)
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"backend not healthy: {last}")

    def find_call(self, caller: str, *, timeout: float = 20,
                  until: str = "ended") -> dict[str, Any]:
        """The call record of this caller number, once the journal has written its end."""
        deadline = time.monotonic() + timeout
        found: Any = None
        while time.monotonic() < deadline:
            status, page = self.api(f"/api/calls?caller_number={caller}&limit=5")
            assert status == 200, page
            if page["items"]:
                found = page["items"][0]
                if until != "ended" or found["ended_at"]:
                    status, detail = self.api(f"/api/calls/{found['id']}")
                    assert status == 200, detail
                    return dict(detail)
            time.sleep(0.3)
        raise AssertionError(f"no finished call from {caller}: {found}")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integration")


@pytest.fixture(scope="session")
def backend(workdir: Path) -> Iterator[Backend]:
    var_dir = workdir / "var"
    var_dir.mkdir()
    database_url = _database_url(var_dir)
    if database_url.startswith("postgresql"):
        _reset_postgres(database_url)
    env = {
        **os.environ,
        "HOTLINE_VAR_DIR": str(var_dir),
        "HOTLINE_DATABASE__URL": database_url,
        "HOTLINE_WEB__PORT": str(WEB_PORT),
        "HOTLINE_AGI__PORT": str(AGI_PORT),
        "HOTLINE_AGI__URL": f"agi://127.0.0.1:{AGI_PORT}",
        "HOTLINE_IVR__DIGIT_TIMEOUT_SECONDS": "4",
        "HOTLINE_QUEUES__WAIT_TIMEOUT_SECONDS": "25",
        "HOTLINE_QUEUES__CRISIS_WAIT_TIMEOUT_SECONDS": "25",
        "HOTLINE_QUEUES__CRISIS_WIDEN_AFTER_SECONDS": "8",
        "HOTLINE_LOG_LEVEL": "INFO",
        "HOTLINE_CLOCK__OFFSET_SECONDS": str(clock_offset_for(HARNESS_TIME)),
        # sipp softphones speak neither TLS nor SRTP and answer no OPTIONS: the demo's cloud
        # seats (c1001, c1003) register over UDP here (test_cloud_seats covers TLS).
        "HOTLINE_ASTERISK__CLOUD_SEAT_TLS_REQUIRED": "false",
        "HOTLINE_ASTERISK__CLOUD_SEAT_QUALIFY_SECONDS": "0",
        # A short SIP lock-out, so test_cloud_seats sees one end.
        "HOTLINE_LOCKOUT__BAN_SECONDS": "15",
        # Callbacks are dialled only in test_voicemail (they would ring other tests'
        # softphones); there, quickly, and a caller who does not answer rings 10 s.
        "HOTLINE_VOICEMAIL__DIAL_CALLBACKS": "false",
        "HOTLINE_VOICEMAIL__DIAL_TICK_SECONDS": "1",
        "HOTLINE_VOICEMAIL__CALLER_RING_SECONDS": "10",
        # A caller waiting in psych or legal may ask for a callback after 8 s.
        "HOTLINE_QUEUES__CALLBACK_OFFER_SECONDS": "8",
    }
    # The only vosk model on PyPI (Korean): transcription runs for real, on any language.
    from voicemail.transcription import packaged_model_dir

    model = packaged_model_dir()
    if model is not None:
        env["HOTLINE_VOICEMAIL__MODEL_DIR"] = str(model)
    # Secrets are generated into the test's own var dir; pin them for the child processes.
    os.environ.update({k: v for k, v in env.items() if k.startswith("HOTLINE_")})
    settings = load_settings()
    env["HOTLINE_AMI__SECRET"] = settings.ami.secret
    os.environ.update(env)

    def hotline(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=env, cwd=REPO,
                              check=True, stdout=subprocess.PIPE, text=True).stdout

    from hotline.redis_service import ensure_redis

    ensure_redis(settings.redis.url, var_dir)
    hotline("demo")
    # The API is per user: the harness signs its requests as the demo admin.
    token = hotline("users", "token", "admin", "--name", "tests").strip()
    hotline("asterisk", "up")
    server = Backend(env, var_dir / "backend.log", token)
    server.start()
    # No debrief pause after a crisis call unless a test asks for one: the tests' counsellors
    # take one crisis call after another.
    status, body = server.api("/api/sites/default/staffing", method="PATCH",
                              body={"debrief_seconds": 0})
    assert status == 200, body
    yield server
    server.stop()


@pytest.fixture(scope="session")
def counsellors(backend: Backend) -> dict[str, str]:
    """SIP username → secret of the demo counsellors, read from the database."""
    from sqlalchemy import select

    from hotline.db.engine import create_engine_for
    from hotline.db.models import Counsellor

    async def load() -> dict[str, str]:
        engine = create_engine_for(backend.env["HOTLINE_DATABASE__URL"])
        async with engine.connect() as connection:
            rows = (await connection.execute(
                select(Counsellor.sip_username, Counsellor.sip_secret))).all()
        await engine.dispose()
        return {row[0]: row[1] for row in rows}

    return asyncio.run(load())
