"""Benchmark: the AMI listener, on a recorded event stream and under live load.

1. Record. The sandbox as the test harness sets it up (demo site, `hotline asterisk up`,
   `hotline serve`) plus bench counsellors (on-site seats, psych skill, on shift, no
   wrap-up) whose softphones one sipp registers and another answers for (ring, talk, hang
   up). sipp callers dial 12355, press 1 during the welcome (psychological counselling), wait
   in the psych queue, are answered, and are hung up after the counsellor ends the call
   (the post-call survey step passes). An extra AMI user with no event filter (rendered
   only with `asterisk.bench`, loopback only, read-only) records every raw event to
   var/bench-ami/ami-stream.jsonl, with the queue view's starting point (QueueStatus,
   DeviceStateList).
2. Replay. The listener's own classes, wired as hotline/app.py wires them (CallTracker,
   LockoutRecorder, QueueView, QueueMemberSync, LiveStaffing; a real SQLite call journal, a
   real Redis through LiveState), take the recorded events through AmiConnection's queue and
   consumer (`AmiConnection.replay`), as fast as they can, the process pinned to one core;
   Redis is written in pipelines as LiveState's writer does (every 0.2 s and at the end);
   QueueMemberSync's passes run against a stand-in Asterisk. Once the whole stream, once the
   stream the backend's AMI user would receive (read classes and event filters of
   asterisk_conf/manager.conf.j2, mirrored by bench.ami_filter); each also with the
   membership passes run once per poke (production coalesces them) and with them off, to
   show what they cost.
3. Lag. The same classes, all started, in this process instead of the backend's (restarted
   with `ami.enabled` off), logged in as the backend's (filtered) AMI user, while sipp drives
   R calls/s through menu, queue and answer for S seconds: for every event handled,
   Asterisk's `Timestamp` to the moment the consumer finished with it; and what each part
   of the machine used meanwhile (`--perf`: where Asterisk's time goes, with perf).
4. Report: its section of docs/benchmarks.md (the others are kept).

Steps 1 and 3 hold /tmp/hotline-sandbox.lock and end with `hotline asterisk up` in the
normal configuration; step 2 runs outside it.

    .venv/bin/python -m bench.ami [--rate 20 40] [--seconds 30] [--replay-only] [--profile]
                                  [--perf]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from panoramisk.message import Message
from rich.table import Table

from bench.ami_filter import AmiUser, backend_user, headers_of, received_by
from bench.ivr import REPO, WEB_PORT, Bench, console, cpu_seconds, pids_named
from bench.menu import cpu_model, open_day_offset, percentile
from bench.report import write_sections
from hotline.config import StaffingSettings

VAR_DIR = REPO / "var" / "bench-ami"
STREAM = VAR_DIR / "ami-stream.jsonl"
LAG = VAR_DIR / "lag.json"
LOCK = Path("/tmp/hotline-sandbox.lock")
MANAGER_TEMPLATE = REPO / "asterisk_conf" / "manager.conf.j2"
RECORDER_USER = "hotline-bench-recorder"  # asterisk_conf/sandbox/manager.conf.j2
HEADING = "## AMI listener: recorded stream replayed, and lag under live load"
SOFTPHONE_PORT = 48500
RECORD_PORT, LAG_PORT = 48000, 48100
RING_MS, TALK_MS = 200, 1000
TARGET_EVENTS_PER_SECOND = 15_000
TARGET_LAG_P99_MS = 100.0
TARGET_RATE = 40  # calls/s
LINGER_SECONDS = 0.2  # LiveState's and the call journal's
NO_SYNC = ", QueueMemberSync passes off"
# QueueMemberSync(min_pass_interval=…) as hotline/app.py wires it
PRODUCTION_INTERVAL = StaffingSettings().min_pass_seconds
PER_POKE = ", a pass per poke"
# replay variants: (name suffix, QueueMemberSync passes run, its min_pass_interval)
VARIANTS = (("", True, PRODUCTION_INTERVAL), (PER_POKE, True, 0.0), (NO_SYNC, False, 0.0))


# -- the sandbox, with bench counsellors ------------------------------------------------------

@contextlib.contextmanager
def sandbox_lock() -> Iterator[None]:
    """The shared sandbox's lock (flock(1) on the same file), held while the body runs."""
    with LOCK.open("a") as handle:
        console.print(f"waiting for {LOCK} …")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def seed_counsellors(url: str, *, site_code: str, count: int,
                           now: datetime) -> list[tuple[str, str]]:
    """Bench counsellors b2001…: on-site seats with the psych skill, on shift now; those
    beyond `count` (from a larger earlier run) are made inactive. (username, secret)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from hotline.db.engine import create_engine_for, session_factory
    from hotline.db.models import Counsellor, Seat, Shift, Site, Tier
    from hotline.secrets import new_sip_secret

    engine = create_engine_for(url)
    try:
        async with session_factory(engine)() as session:
            site = await session.scalar(select(Site).where(Site.code == site_code))
            if site is None:
                raise SystemExit(f"no site {site_code}: did `hotline demo` run?")
            existing = {c.sip_username: c for c in (await session.scalars(
                select(Counsellor).where(Counsellor.sip_username.like("b2%"))
                .options(selectinload(Counsellor.shifts)))).all()}
            seeded = []
            for index in range(max(count, len(existing))):
                username = f"b{2001 + index}"
                counsellor = existing.get(username)
                if counsellor is None:
                    if index >= count:
                        continue
                    counsellor = Counsellor(
                        site_id=site.id, name=f"压测{index + 1:03d}", tier=Tier.CONSULTATION,
                        seat=Seat.ON_SITE, skills=["psych"], sip_username=username,
                        sip_secret=new_sip_secret(), extension=username.removeprefix("b"))
                    session.add(counsellor)
                    await session.flush()
                    await session.refresh(counsellor, ["shifts"])
                counsellor.active = index < count
                if counsellor.active:
                    if not any(s.starts_at <= now < s.ends_at for s in counsellor.shifts):
                        start = now - timedelta(hours=1)
                        counsellor.shifts.append(Shift(starts_at=start,
                                                       ends_at=start + timedelta(days=1)))
                    seeded.append((username, counsellor.sip_secret))
            await session.commit()
    finally:
        await engine.dispose()
    return seeded


def sqlite_path(url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database:
        raise SystemExit(f"not a SQLite file URL: {url}")
    return Path(database)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a database another process may be writing."""
    target.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(source)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class CpuMeter:
    """CPU time of each part of the machine over a window, in shares of one core."""

    def __init__(self, bench: AmiBench) -> None:
        self._pids = {
            "Asterisk": [bench.sandbox.asterisk_pid() or 0],
            "backend": [bench.backend.pid] if bench.backend else [],
            "this process": [os.getpid()],
            "sipp softphones": [bench.softphones.pid] if bench.softphones else [],
            "Redis": pids_named("redis-server"),
            "fail2ban": pids_named("fail2ban-server"),
        }
        self._cpu: dict[str, float] = {}
        self._children = 0.0
        self._machine = (0, 0)
        self._started = 0.0

    @staticmethod
    def _children_cpu() -> float:
        # the sipp callers: children this process waited for (subprocess.run)
        times = os.times()
        return times.children_user + times.children_system

    def start(self) -> None:
        self._cpu = {part: cpu_seconds(pids) for part, pids in self._pids.items()}
        self._children = self._children_cpu()
        self._machine = machine_jiffies()
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._started
        shares = {part: (cpu_seconds(pids) - self._cpu[part]) / wall
                  for part, pids in self._pids.items()}
        shares["sipp callers"] = (self._children_cpu() - self._children) / wall
        busy, total = (a - b for a, b in zip(machine_jiffies(), self._machine, strict=True))
        machine = (os.cpu_count() or 1) * busy / total if total else 0.0
        shares["other"] = machine - sum(shares.values())
        shares["machine"] = machine
        shares["seconds"] = wall
        return shares


PERF_DATA = VAR_DIR / "asterisk.perf.data"
PERF_REPORT = VAR_DIR / "asterisk-perf.txt"


def start_perf(bench: AmiBench) -> subprocess.Popen[bytes] | None:
    """`perf record` of Asterisk (sampled, no call graphs) while the body runs."""
    pid = bench.sandbox.asterisk_pid()
    if shutil.which("perf") is None or not pid:
        console.print("[yellow]perf or Asterisk's pid not found: no profile of Asterisk")
        return None
    return subprocess.Popen(["perf", "record", "-F", "499", "-p", str(pid), "-o",
                             str(PERF_DATA)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_perf(bench: AmiBench, perf: subprocess.Popen[bytes]) -> None:
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=30)
    report = []
    for sort in ("dso", "dso,sym"):
        result = subprocess.run(
            ["perf", "report", "-i", str(PERF_DATA), "--stdio", "--no-children",
             f"--symfs={bench.sandbox.root}", "--sort", sort, "--percent-limit", "0.5"],
            capture_output=True, text=True, check=False)
        report.append(result.stdout)
    PERF_REPORT.write_text("\n".join(report))
    console.print(f"Asterisk's profile written to {PERF_REPORT}")


def log_size(bench: AmiBench) -> int:
    path = bench.sandbox.messages_log
    return path.stat().st_size if path.exists() else 0


def taskprocessor_warnings(bench: AmiBench, since: int) -> list[str]:
    """Asterisk's "Taskprocessor '…' queue reached N scheduled tasks" warnings logged since
    the log had `since` bytes: which of its queues fell behind."""
    with bench.sandbox.messages_log.open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", "replace")
    return [line.split("taskprocessor.c: ", 1)[1] for line in text.splitlines()
            if "taskprocessor.c: Taskprocessor" in line]


def cpu_text(shares: Mapping[str, float], this_process: str) -> str:
    parts = [f"{name.replace('this process', this_process)} {100 * share:.0f} %"
             for name, share in shares.items() if name not in ("machine", "seconds")]
    return (f"the machine {100 * shares['machine'] / (os.cpu_count() or 1):.0f} % busy "
            f"({os.cpu_count()} cores); in shares of one core: " + ", ".join(parts))


class AmiBench(Bench):
    def __init__(self, *, counsellors: int, var_dir: Path) -> None:
        super().__init__(calls=0, rate=1, db="sqlite", var_dir=var_dir)
        self.counsellors = counsellors
        self.offset = open_day_offset(datetime.now(UTC))
        self.env.update({
            "HOTLINE_CLOCK__OFFSET_SECONDS": f"{self.offset:.0f}",
            # The next call right after the last one: no wrap-up pause between calls.
            "HOTLINE_QUEUES__WRAPUP_SECONDS": "0",
            # The demo's cloud seats over UDP, as the integration tests have them.
            "HOTLINE_ASTERISK__CLOUD_SEAT_TLS_REQUIRED": "false",
            "HOTLINE_ASTERISK__CLOUD_SEAT_QUALIFY_SECONDS": "0",
        })
        self.users: list[tuple[str, str]] = []
        self.softphones: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        from hotline.clock import Clock
        from hotline.config import load_settings

        settings = load_settings()
        self.users = asyncio.run(seed_counsellors(
            settings.database_url, site_code=settings.demo.site_code, count=self.counsellors,
            now=Clock.from_settings(settings.clock).now()))

    def register(self, expires: int) -> None:
        users = self.var_dir / "bench-counsellors.csv"
        # sipp takes a per-line digest from the injection file as a whole keyword only
        users.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password={s}];\n" for u, s in self.users))
        scenario = self.var_dir / f"ami_register_{expires}.xml"
        scenario.write_text((REPO / "bench" / "ami_register.xml").read_text()
                            .replace("@EXPIRES@", str(expires)))
        result = subprocess.run(
            ["sipp", "-sf", str(scenario), "-inf", str(users), "-i", "127.0.0.1",
             "-p", str(SOFTPHONE_PORT), "-mp", str(SOFTPHONE_PORT + 4), "-m",
             str(len(self.users)), "-r", "50", "-nostdin", "-timeout", "60s",
             "-trace_err", "-error_file", str(self.var_dir / "sipp-register-errors.log"),
             "127.0.0.1:5060"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            check=False)
        if result.returncode != 0 and expires:
            raise SystemExit("bench counsellors could not register; see "
                             f"{self.var_dir / 'sipp-register-errors.log'}")

    def start_softphones(self) -> None:
        self.register(3600)
        scenario = self.var_dir / "ami_counsellor.xml"
        scenario.write_text((REPO / "bench" / "ami_counsellor.xml").read_text()
                            .replace("@RING_MS@", str(RING_MS))
                            .replace("@TALK_MS@", str(TALK_MS)))
        self.softphones = subprocess.Popen(
            ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(SOFTPHONE_PORT),
             "-mp", str(SOFTPHONE_PORT + 4), "-m", "1000000", "-nostdin",
             "-watchdog_minor_maxtriggers", "100000000",
             "-watchdog_major_maxtriggers", "100000000", "127.0.0.1:5060"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_softphones(self) -> None:
        if self.softphones is not None:
            self.softphones.terminate()
            try:
                self.softphones.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.softphones.kill()
                self.softphones.wait()
            self.softphones = None
            self.register(0)

    def restart_backend(self, **env: str) -> None:
        """`hotline serve` again with these settings added (the lag run: its AMI listener
        off, the benchmark's own takes its place)."""
        self.stop()
        log = (self.var_dir / "bench-backend.log").open("ab")
        self.backend = subprocess.Popen([sys.executable, "-m", "hotline.cli", "serve"],
                                        env={**self.env, **env}, cwd=REPO, stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body: dict[str, Any] = {}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/api/health",
                                            timeout=5) as reply:
                    body = json.loads(reply.read())
            except urllib.error.HTTPError as error:  # 503: degraded (no AMI), still up
                body = json.loads(error.read() or b"{}")
            except OSError:
                pass
            if body.get("components", {}).get("fastagi", {}).get("status") == "ok":
                return
            time.sleep(0.3)
        raise SystemExit("backend did not come back; see bench-backend.log")

    def wait_idle(self, timeout: float = 60) -> None:
        """Until Asterisk has no channels left (calls of an earlier run), hanging up what
        remains after `timeout`."""
        from hotline.asterisk.sandbox import SandboxError

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(SandboxError):
                if self.sandbox.cli("core show channels count").lstrip().startswith("0 active "):
                    return
            time.sleep(1)
        console.print("[yellow]channels left from the previous run: hanging them up")
        with contextlib.suppress(SandboxError):
            self.sandbox.cli("channel request hangup all")
        time.sleep(5)

    def ready_members(self) -> int:
        """Bench counsellors in the psych queue, not paused, softphone reachable."""
        return sum(1 for line in self.sandbox.cli("queue show psych").splitlines()
                   if "(PJSIP/b2" in line and "paused" not in line.lower()
                   and "Unavailable" not in line)

    def wait_members(self, timeout: float = 90) -> int:
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            ready = self.ready_members()
            if ready >= len(self.users):
                return ready
            time.sleep(1)
        console.print(f"[yellow]only {ready} of {len(self.users)} bench counsellors ready")
        return ready


# -- recording ----------------------------------------------------------------------------------

@dataclass
class Recording:
    meta: dict[str, Any]
    snapshot: dict[str, list[str]]  # action → the raw text of its answers
    events: list[tuple[float, str]]  # (received at, raw text)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            out.write(json.dumps({"kind": "meta", **self.meta}, ensure_ascii=False) + "\n")
            for action, raws in self.snapshot.items():
                for raw in raws:
                    out.write(json.dumps({"kind": "snapshot", "action": action, "raw": raw},
                                         ensure_ascii=False) + "\n")
            for at, raw in self.events:
                out.write(json.dumps({"kind": "event", "at": at, "raw": raw},
                                     ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> Recording:
        meta: dict[str, Any] = {}
        snapshot: dict[str, list[str]] = {}
        events: list[tuple[float, str]] = []
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                item = json.loads(line)
                kind = item.pop("kind")
                if kind == "meta":
                    meta = item
                elif kind == "snapshot":
                    snapshot.setdefault(item["action"], []).append(item["raw"])
                else:
                    events.append((item["at"], item["raw"]))
        return cls(meta, snapshot, events)

    @property
    def raws(self) -> list[str]:
        return [raw for _, raw in self.events]


class AmiRecorder:
    """A plain AMI client that keeps every event's raw text, as Asterisk sent it."""

    def __init__(self, *, host: str, port: int, username: str, secret: str) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.events: list[tuple[float, str]] = []
        self.snapshot: dict[str, list[str]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def _block(self) -> str:
        assert self._reader is not None
        data = await self._reader.readuntil(b"\r\n\r\n")
        return data.decode("utf-8", errors="replace")[:-4]

    async def _send(self, **headers: str) -> None:
        assert self._writer is not None
        self._writer.write("".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
                           + b"\r\n")
        await self._writer.drain()

    async def start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        await self._reader.readline()  # Asterisk Call Manager/x.y
        await self._send(Action="Login", Username=self.username, Secret=self.secret,
                         Events="on", ActionID="bench-login")
        while "ActionID: bench-login" not in (answer := await self._block()):
            pass
        if "Response: Success" not in answer:
            raise SystemExit(f"the recorder's AMI login was refused: {answer}")
        for action in ("QueueStatus", "DeviceStateList"):
            await self._send(Action=action, ActionID=f"bench-{action}")
            answers = self.snapshot.setdefault(action, [])
            while True:
                block = await self._block()
                if f"ActionID: bench-{action}" not in block:
                    continue
                answers.append(block)
                if "EventList: Complete" in block or "Response: Error" in block:
                    break
        self._task = asyncio.create_task(self._read(), name="ami-recorder")

    def restart_stream(self) -> None:
        """Forget what was received so far: the stream starts now."""
        self.events = []

    async def _read(self) -> None:
        while True:
            block = await self._block()
            self.events.append((time.time(), block))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


async def record(bench: AmiBench, *, calls: int, rate: int, perf: bool = False) -> Recording:
    from hotline.config import load_settings

    settings = load_settings()
    recorder = AmiRecorder(host=settings.ami.host, port=settings.ami.port,
                           username=RECORDER_USER, secret=settings.ami.secret)
    await recorder.start()
    recorder.restart_stream()
    meter = CpuMeter(bench)
    profiler = start_perf(bench) if perf else None
    meter.start()
    started = time.time()
    failed = await asyncio.to_thread(bench.sipp, "12355", calls, rate, RECORD_PORT)
    await asyncio.sleep(3.0)  # the last hang-ups' events
    await recorder.stop()
    cpu = meter.stop()
    if profiler is not None:
        stop_perf(bench, profiler)
    meta = {"calls": calls, "rate": rate, "failed": failed, "started": started,
            "seconds": time.time() - started, "clock_offset": bench.offset, "cpu": cpu,
            "counsellors": len(bench.users), "ring_ms": RING_MS, "talk_ms": TALK_MS,
            "site": settings.demo.site_code, "node": settings.asterisk.node_name,
            "wrapup_seconds": settings.queues.wrapup_seconds,
            "live_refresh_seconds": settings.staffing.live_refresh_seconds}
    return Recording(meta, recorder.snapshot, recorder.events)


# -- the listener, wired as hotline/app.py wires it ------------------------------------------

@dataclass
class Listener:
    ami: Any
    journal: Any
    live: Any
    roster: Any
    view: Any
    tracker: Any
    member_sync: Any
    live_staffing: Any
    engine: Any

    async def close(self) -> None:
        await self.member_sync.close()
        await self.live_staffing.close()
        await self.ami.close()
        await self.journal.close()
        await self.live.close()
        await self.engine.dispose()


async def build_listener(*, ami: Any, db_url: str, redis_url: str, prefix: str,
                         offset: float, node: str, wrapup_seconds: int,
                         refresh_seconds: float, actions: Any = None,
                         min_pass_interval: float = PRODUCTION_INTERVAL) -> Listener:
    """The AMI listener's subscribers as build_components wires them, on their own SQLite
    copy and Redis key prefix; nothing started. QueueMemberSync sends its actions to
    `actions` (default: `ami`); a crisis call's debrief pause is not wired (the bench's calls
    are psych calls)."""
    from ami_listener.agent_state import LiveStaffing
    from ami_listener.call_tracking import CallTracker
    from ami_listener.lockouts import LockoutRecorder
    from ami_listener.queue_members import QueueMemberSync
    from ami_listener.queue_view import QueueView
    from hotline.calls.storage import CallJournal
    from hotline.clock import Clock
    from hotline.config import ClockSettings
    from hotline.db.engine import create_engine_for, session_factory
    from hotline.live import LiveState
    from hotline.staffing.roster import Roster

    clock = Clock.from_settings(ClockSettings(offset_seconds=offset))
    engine = create_engine_for(db_url)
    sessions = session_factory(engine)
    roster = Roster(sessions=sessions, clock=clock)
    if not await roster.reload_quietly():
        raise SystemExit(f"roster not loaded from {db_url}")
    journal = CallJournal(engine=engine, node=node)
    live = LiveState(url=redis_url, prefix=prefix)
    tracker = CallTracker(journal=journal, clock=clock, live=live, directory=roster)
    tracker.subscribe(ami)
    LockoutRecorder(sessions=sessions, clock=clock, node=node).subscribe(ami)
    view = QueueView(clock=clock)
    view.subscribe(ami)
    member_sync = QueueMemberSync(ami=actions or ami, view=view, roster=roster, clock=clock,
                                  min_pass_interval=min_pass_interval)
    member_sync.subscribe()
    live_staffing = LiveStaffing(view=view, roster=roster, live=live, clock=clock,
                                 default_wrapup_seconds=wrapup_seconds,
                                 refresh_seconds=refresh_seconds)
    live_staffing.subscribe()
    return Listener(ami, journal, live, roster, view, tracker, member_sync, live_staffing,
                    engine)


async def drop_keys(redis_url: str, prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class AcceptingAsterisk:
    """QueueMemberSync's Asterisk in a replay: connected, every action accepted and kept.
    The stream starts from the membership Asterisk had, so its passes find (almost)
    nothing to change, but they run — on every poke, as they do live."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.on_connected: list[Any] = []  # as AmiConnection's: never called in a replay
        self.on_disconnected: list[Any] = []

    async def action(self, action: Mapping[str, Any], **_: Any) -> Message:
        self.sent.append(dict(action))
        return Message({"Response": "Success", "Message": "accepted (replay)"})


class RecordedActions:
    """Answers QueueView.rebuild's actions with the recorded ones."""

    def __init__(self, snapshot: Mapping[str, list[str]]) -> None:
        self._snapshot = snapshot

    async def action(self, action: Mapping[str, Any], **_: Any) -> list[Message]:
        raws = self._snapshot.get(str(action["Action"]), [])
        return [m for m in (Message.from_line(raw) for raw in raws) if m is not None]


# -- replay -------------------------------------------------------------------------------------

@dataclass
class Replay:
    stream: str
    events: int
    seconds: float  # replay and Redis written
    cpu_seconds: float
    journal_seconds: float  # … and the call journal written too
    redis_updates: int
    pipelines: int
    journal_changes: int
    profile: str = ""  # pyinstrument's text, with --profile
    sync_passes: int = 0  # QueueMemberSync passes run during the replay
    sync_actions: int = 0  # … and the queue actions they sent

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_seconds / self.events

    @property
    def rate_with_journal(self) -> float:
        return self.events / self.journal_seconds


async def replay_once(stream: str, raws: list[str], recording: Recording, *, db_template: Path,
                      redis_url: str, workdir: Path, run: int, sync: bool = True,
                      min_pass_interval: float = PRODUCTION_INTERVAL,
                      profile: bool = False) -> Replay:
    """One replay on fresh components. `sync`: QueueMemberSync's task runs its passes, as it
    does live, against an Asterisk stand-in that accepts every action."""
    from ami_listener.connection import AmiConnection

    messages = [m for m in (Message.from_line(raw) for raw in raws) if m is not None]
    database = workdir / f"replay-{stream}-{run}.sqlite3"
    copy_sqlite(db_template, database)
    prefix = f"hotline-bench-ami:replay-{stream}-{run}:"
    meta = recording.meta
    ami = AmiConnection(host="127.0.0.1", port=9, username="replay", secret="replay")
    asterisk = AcceptingAsterisk()
    listener = await build_listener(
        ami=ami, db_url=f"sqlite:///{database}", redis_url=redis_url, prefix=prefix,
        offset=meta["clock_offset"], node=meta.get("node", "sandbox"),
        wrapup_seconds=meta.get("wrapup_seconds", 0),
        refresh_seconds=meta.get("live_refresh_seconds", 2.0), actions=asterisk,
        min_pass_interval=min_pass_interval)
    try:
        # LiveState's own writer task is not started: the bench writes as it does (below),
        # counting the pipelines.
        await listener.view.rebuild(cast(AmiConnection, RecordedActions(recording.snapshot)))
        await listener.live.flush()
        await listener.journal.start()
        await listener.live_staffing.start()
        if sync:
            await listener.member_sync.start()
            await listener.member_sync.sync_once()  # the pass after a rebuild, not timed
        passes_before = listener.member_sync.passes
        written_before = listener.live.written
        stop = asyncio.Event()
        pipelines = 0

        async def writer() -> None:
            # LiveState's writer: one pipeline for what arrived in the last linger period.
            nonlocal pipelines
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), LINGER_SECONDS)
                before = listener.live.written
                await listener.live.flush()
                pipelines += listener.live.written > before
                if stop.is_set():
                    return

        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        started, cpu = time.perf_counter(), time.process_time()
        writing = asyncio.create_task(writer())
        count = await ami.replay(messages)
        stop.set()
        await writing
        seconds, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        await listener.journal.flush(wait_seconds=120)
        journal_seconds = time.perf_counter() - started
        text = ""
        if profiler is not None:
            profiler.stop()
            text = profiler.output_text(unicode=True, color=False)
        return Replay(stream, count, seconds, cpu_used, journal_seconds,
                      listener.live.written - written_before, pipelines,
                      listener.journal.stats.written_changes, text,
                      listener.member_sync.passes - passes_before, len(asterisk.sent))
    finally:
        await listener.close()
        await drop_keys(redis_url, prefix)
        database.unlink(missing_ok=True)


def parse_cost(raws: list[str], repeat: int = 3) -> float:
    """CPU µs per event of panoramisk's own parsing of the text (SafeAmiProtocol's per-read
    work, before the queue), the best of `repeat` passes on one core."""
    best = float("inf")
    with one_core():
        for _ in range(repeat):
            started = time.process_time()
            for raw in raws:
                Message.from_line(raw)
            best = min(best, time.process_time() - started)
    return 1e6 * best / max(1, len(raws))


@contextlib.contextmanager
def one_core() -> Iterator[int]:
    """Pin this process (and the threads it starts) to one core meanwhile."""
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def replay_all(recording: Recording, streams: dict[str, list[str]], *, db_template: Path,
               redis_url: str, repeat: int, profile: bool) -> dict[str, list[Replay]]:
    results: dict[str, list[Replay]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ami-") as tmp, one_core():
        for (name, raws), (suffix, sync, interval) in itertools.product(
                streams.items(), VARIANTS):
            variant = name + suffix
            # a profiled run first (not counted: the profiler slows it down), then the runs
            for run in range(-1 if profile and not suffix else 0, repeat):
                result = asyncio.run(replay_once(name, raws, recording, db_template=db_template,
                                                 redis_url=redis_url, workdir=Path(tmp),
                                                 run=run, sync=sync, min_pass_interval=interval,
                                                 profile=run < 0))
                if run >= 0:
                    results.setdefault(variant, []).append(result)
                label = f"#{run + 1}" if run >= 0 else "(profiled)"
                console.print(f"replay {variant} {label}: {result.events} events, "
                              f"{result.rate:,.0f}/s, {result.cpu_us:.1f} µs CPU/event, "
                              f"{result.redis_updates} Redis updates in {result.pipelines} "
                              f"pipelines; with the journal written "
                              f"{result.rate_with_journal:,.0f}/s; {result.sync_passes} "
                              f"membership passes, {result.sync_actions} actions")
                if result.profile:
                    target = VAR_DIR / f"profile-{name}.txt"
                    target.write_text(result.profile)
                    console.print(f"profile written to {target}")
    return results


# -- lag under live load ------------------------------------------------------------------------

@dataclass
class Lag:
    calls: int
    rate: int
    failed: int
    seconds: float
    lags_ms: list[float]
    names: Counter[str]
    answered: int
    cpu: dict[str, float]  # CpuMeter's shares of one core
    events_per_call: float = 0.0
    measured: float = 0.0  # when (Unix time)
    reads_ms: list[float] = field(default_factory=list)  # Timestamp → read from the socket
    min_pass_interval: float = PRODUCTION_INTERVAL  # QueueMemberSync's
    passes: int = 0  # QueueMemberSync passes during the run
    backlogs: list[str] = field(default_factory=list)  # Asterisk's taskprocessor warnings

    @property
    def label(self) -> str:
        return (f"{self.rate}" if self.min_pass_interval == PRODUCTION_INTERVAL else
                f"{self.rate}{PER_POKE}" if not self.min_pass_interval else
                f"{self.rate}, passes at most every {self.min_pass_interval:g} s")

    @staticmethod
    def save_all(lags: list[Lag], path: Path) -> None:
        path.write_text(json.dumps([{**lag.__dict__, "names": dict(lag.names)}
                                    for lag in lags]))

    @classmethod
    def load_all(cls, path: Path) -> list[Lag]:
        return [cls(**{**data, "names": Counter(data["names"])})
                for data in json.loads(path.read_text())]

    @property
    def events(self) -> int:
        return len(self.lags_ms)


async def measure_lag(bench: AmiBench, *, rate: int, seconds: int, workdir: Path,
                      min_pass_interval: float = PRODUCTION_INTERVAL) -> Lag:
    from ami_listener.connection import AmiConnection
    from hotline.config import load_settings

    settings = load_settings()
    database = workdir / "lag.sqlite3"
    copy_sqlite(sqlite_path(settings.database_url), database)
    prefix = "hotline-bench-ami:lag:"
    ami = AmiConnection(host=settings.ami.host, port=settings.ami.port,
                        username=settings.ami.username, secret=settings.ami.secret,
                        action_timeout=settings.ami.action_timeout_seconds)
    listener = await build_listener(
        ami=ami, db_url=f"sqlite:///{database}", redis_url=settings.redis.url, prefix=prefix,
        offset=bench.offset, node=settings.asterisk.node_name,
        wrapup_seconds=settings.queues.wrapup_seconds,
        refresh_seconds=settings.staffing.live_refresh_seconds,
        min_pass_interval=min_pass_interval)
    handled: list[tuple[float, float, str, str]] = []
    manager = ami._manager  # instrumentation: when each event left the socket's read
    dispatch = manager.dispatch

    def received(event: Message) -> list[str]:
        event.bench_received = time.time()
        return dispatch(event)

    manager.dispatch = received  # type: ignore[method-assign]

    def done(message: Message) -> None:
        # Subscribed last: called once every other subscriber has finished with the event.
        handled.append((time.time(), getattr(message, "bench_received", 0.0),
                        message.get("Timestamp", ""), message.get("Event", "")))

    ami.subscribe("*", done)
    await listener.journal.start()
    await listener.live.start()
    await ami.start()
    await listener.member_sync.start()
    await listener.live_staffing.start()
    try:
        if not await ami.wait_connected(15):
            raise SystemExit(f"the in-process listener could not log in: {ami.last_error}")
        for _ in range(100):
            if listener.view.ready:
                break
            await asyncio.sleep(0.1)
        calls = rate * seconds
        meter = CpuMeter(bench)
        meter.start()
        started = time.time()
        handled.clear()
        passes = listener.member_sync.passes
        log_start = log_size(bench)
        port = LAG_PORT + rate + (0 if min_pass_interval == PRODUCTION_INTERVAL else 50)
        failed = await asyncio.to_thread(bench.sipp, "12355", calls, rate, port)
        await asyncio.sleep(3.0)
        ended = time.time()
        cpu = meter.stop()
        passes = listener.member_sync.passes - passes
        backlogs = taskprocessor_warnings(bench, log_start)
    finally:
        await listener.close()
        await drop_keys(settings.redis.url, prefix)
    lags, reads, names = [], [], Counter[str]()
    for at, read, stamp, name in handled:
        with contextlib.suppress(ValueError):
            lags.append(1000 * (at - float(stamp)))
            reads.append(1000 * (read - float(stamp)))
            names[name] += 1
    wall = ended - started
    return Lag(calls, rate, failed, wall, lags, names, names["AgentConnect"], cpu,
               events_per_call=len(lags) / calls, measured=started, reads_ms=reads,
               min_pass_interval=min_pass_interval, passes=passes, backlogs=backlogs)


# -- report -------------------------------------------------------------------------------------

def median_run(runs: list[Replay]) -> Replay:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def report(recording: Recording, streams: dict[str, list[str]],
           replays: dict[str, list[Replay]], lags: list[Lag], *, parse: dict[str, float],
           user: AmiUser, command: str) -> str:
    meta = recording.meta
    calls = max(1, meta["calls"] - meta["failed"])
    unfiltered = streams["unfiltered"]
    per_call = {name: len(raws) / calls for name, raws in streams.items()}
    read_only = [raw for raw in unfiltered if user.reads(headers_of(raw))]
    names = Counter(headers_of(raw).get("Event", "?") for raw in unfiltered)
    passing = {headers_of(raw).get("Event", "?") for raw in streams["filtered"]}
    recorded_at = datetime.fromtimestamp(meta["started"], UTC)
    lines = [
        HEADING,
        "",
        f"On {platform.node()} ({os.cpu_count()} cores, {cpu_model()}, shared by Asterisk, "
        f"sipp, Redis, the backend and this benchmark; Python {platform.python_version()}). "
        f"Stream recorded and lag measured {recorded_at:%Y-%m-%d %H:%M} UTC by "
        f"`{meta.get('command', command)}`; replayed {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"by `{command}`. `--replay-only` replays the last recording again.",
        "",
        f"Each call: sipp on the carrier address dials 12355, presses 1 during the welcome "
        f"(psychological counselling, decided by the FastAGI IVR), waits in the psych queue; "
        f"one of {meta['counsellors']} bench counsellors (registered sipp softphones, "
        f"on-site seats, no wrap-up time) rings {meta['ring_ms']} ms, answers, talks "
        f"{meta['talk_ms']} ms and hangs up; the post-call survey step passes (off) and "
        f"Asterisk hangs up the caller.",
        "",
        "### Events per call",
        "",
        f"Recorded with an AMI user that has no event filter and reads every class "
        f"(`{RECORDER_USER}`, rendered only with `asterisk.bench`): {meta['calls']} calls at "
        f"{meta['rate']} calls/s, {meta['failed']} failed, {len(unfiltered)} events."
        + (f" CPU meanwhile: {cpu_text(meta['cpu'], 'the recorder')} — Asterisk "
           f"**{1000 * meta['cpu']['Asterisk'] * meta['cpu']['seconds'] / meta['calls']:.1f} "
           "ms per call**." if "cpu" in meta else ""),
        "",
        "| stream | events per call |",
        "|---|---|",
        f"| unfiltered (read = all, no filter) | {per_call['unfiltered']:.1f} |",
        f"| the backend user's read classes ({','.join(sorted(user.read))}), no filter | "
        f"{len(read_only) / calls:.1f} |",
        f"| read classes and event filters of `asterisk_conf/manager.conf.j2` (mirrored in "
        f"Python, `bench/ami_filter.py`) | **{per_call['filtered']:.1f}** |",
    ]
    for lag in lags:
        lines.append(f"| received live by the backend's filtered user (lag run at "
                     f"{lag.label} calls/s below) | {lag.events_per_call:.1f} |")
    lines += [
        "",
        "Most frequent events of the unfiltered stream, per call (✓: the filter passes "
        "some of them):",
        "",
        "| event | per call | filter |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {n / calls:.1f} | {'✓' if name in passing else ''} |"
              for name, n in names.most_common(14)]
    lines += [
        "",
        "A manager event filter keeps an event off a session, not out of Asterisk: while any "
        "AMI session is logged in, Asterisk turns every stasis message into an AMI event "
        "(taskprocessor `stasis/m:manager:core`, one thread) before each session's filters "
        "drop it. Asterisk itself is spared only by declining message types in `stasis.conf` "
        "`[declined_message_types]`. The sandbox declines what nothing on the hotline "
        f"consumes ({', '.join(f'`{t}`' for t in declined_types())}), so those events are "
        "absent from every stream above (in the previous run, without the declines and on "
        "another 2-core machine, VarSet alone was 84 of 166 events per "
        "call, and the whole listener's lag p99 at 40 calls/s was above a second). Types "
        "that Asterisk 22's manager routes itself (DTMF, music on hold, hang-up requests) "
        "cannot be declined: the manager module then fails to load and Asterisk exits.",
    ]
    lines += [
        "",
        "### Replay on one core",
        "",
        "The recorded events, parsed into panoramisk Messages beforehand, go through "
        "`AmiConnection.replay` (the listener's own queue and consumer task, 100 events per "
        "simulated read) into the subscribers wired as in `hotline/app.py`: CallTracker "
        "(call journal → SQLite, live calls → Redis), LockoutRecorder, QueueView, "
        "QueueMemberSync (its passes run against a stand-in Asterisk that accepts every "
        "action; they find nothing to change) and LiveStaffing (counsellors' and queues' "
        "live documents → Redis, its 2 s refresh running). The queue view starts from the "
        "QueueStatus and DeviceStateList recorded before the calls. Redis is written as "
        "LiveState's writer does: one pipeline for what arrived in the last 0.2 s, and a "
        "last one at the end, inside the measured time. The process is pinned to one core; "
        f"the median of {len(next(iter(replays.values())))} runs, each on a fresh copy of the "
        "database and its own Redis keys.",
        "",
        "| stream | events | events/s (Redis written) | CPU µs/event | calls/s one core "
        "keeps up with (parsing included) | Redis updates → pipelines | membership passes | "
        "events/s with the SQL journal written |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in replays.items():
        run = median_run(runs)
        lines.append(
            f"| {name} | {run.events} | **{run.rate:,.0f}** | {run.cpu_us:.1f} | "
            f"{1e6 / ((run.cpu_us + parse[run.stream]) * per_call[run.stream]):,.0f} | "
            f"{run.redis_updates} → {run.pipelines} | {run.sync_passes} | "
            f"{run.rate_with_journal:,.0f} |")
    unf, fil = median_run(replays["unfiltered"]), median_run(replays["filtered"])
    cpu_call_unf = (unf.cpu_us + parse["unfiltered"]) * per_call["unfiltered"] / 1000
    cpu_call_fil = (fil.cpu_us + parse["filtered"]) * per_call["filtered"] / 1000
    verdict = "met" if unf.rate >= TARGET_EVENTS_PER_SECOND else "NOT met"
    lines += [
        "",
        f"- Unfiltered stream: **{unf.rate:,.0f} events/s** with Redis written (target ≥ "
        f"{TARGET_EVENTS_PER_SECOND:,}: {verdict}).",
        f"- Parsing the text into Messages (panoramisk's `Message.from_line`, done per TCP "
        f"read before the queue, not in the figures above): {parse['unfiltered']:.1f} µs "
        f"CPU per event unfiltered, {parse['filtered']:.1f} µs filtered.",
        f"- Listener CPU per call, parsing included: {cpu_call_unf:.2f} ms unfiltered, "
        f"{cpu_call_fil:.2f} ms with the source filter "
        f"({cpu_call_unf / cpu_call_fil if cpu_call_fil else 0:.1f}× less): the filter spares "
        f"the sending, parsing and dispatching of "
        f"{per_call['unfiltered'] - per_call['filtered']:.0f} events per call (Asterisk "
        "raises them all the same: a manager event filter acts per session).",
    ]
    per_poke, off = replays.get(f"unfiltered{PER_POKE}"), replays.get(f"unfiltered{NO_SYNC}")
    if per_poke and off:
        poke_run, off_run = median_run(per_poke), median_run(off)
        per_pass = ((poke_run.cpu_us - off_run.cpu_us) * poke_run.events
                    / max(poke_run.sync_passes, 1) / 1000)
        lines.append(
            f"- What the membership passes cost: a pass recomputes the membership of the whole "
            f"roster ({meta['counsellors']} bench counsellors and the demo's here: "
            f"`Roster.desired`, `plan_changes`), about {per_pass:.1f} ms. Nearly every read "
            f"that changes a counsellor or a queue pokes one: run once per poke, "
            f"{poke_run.sync_passes} passes take "
            f"{100 * (1 - off_run.cpu_us / poke_run.cpu_us):.0f} % of the listener's time "
            f"({poke_run.rate:,.0f} events/s). Production (`staffing.min_pass_seconds` = "
            f"{PRODUCTION_INTERVAL:g}) coalesces the pokes within {PRODUCTION_INTERVAL:g} s "
            f"of a pass into the next: {unf.sync_passes} passes, {unf.rate:,.0f} events/s; "
            f"with no passes at all {off_run.rate:,.0f} events/s. A membership change waits "
            f"at most {PRODUCTION_INTERVAL:g} s more for it (shift boundaries are seen "
            f"within the 1 s tick anyway).")
    lines.append("")
    if lags:
        lines += [
            "### Lag behind Asterisk under live load",
            "",
            "The listener's classes run in the benchmark's process instead of the backend's "
            "(`hotline serve` restarted with `ami.enabled` off: FastAGI, the call journal "
            "and the rest as usual), all of them started as `hotline serve` starts them "
            "(QueueMemberSync's passes and LiveStaffing's refresh too), logged in as the "
            "backend's AMI user (read classes and event filters as in production), while "
            "sipp drives R calls/s for the given time through menu, queue and answer as "
            "above. Lag is the time from the event's `Timestamp` (Asterisk's clock when it "
            "raised the event; `timestampevents = yes`) to the moment the listener's consumer "
            "had run every subscriber for it (a last subscriber to `*` notes the time): it "
            "includes Asterisk's own sending, the socket, parsing and waiting in the queue. "
            "The last two columns stop the clock when the event left the socket's read "
            "(parsed, put in the consumer's queue): the part of the lag before the listener's "
            "queue (Asterisk, the kernel, and the event loop busy elsewhere before reading). "
            f"A row marked \"{PER_POKE[2:]}\" runs QueueMemberSync without production's "
            "coalescing, for comparison.",
            "",
            "| calls/s | calls | failed | answered | events handled | events/s | membership "
            "passes | lag p50 ms | p90 ms | p99 ms | max ms | read from the socket: p50 ms | "
            "p99 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for lag in lags:
            ordered = sorted(lag.lags_ms) or [float("nan")]
            reads = sorted(lag.reads_ms) or [float("nan")]
            lines.append(
                f"| {lag.label} | {lag.calls} | {lag.failed} | {lag.answered} | {lag.events} | "
                f"{lag.events / lag.seconds:,.0f} | {lag.passes} | "
                f"{percentile(ordered, 0.5):.2f} | "
                f"{percentile(ordered, 0.9):.2f} | **{percentile(ordered, 0.99):.2f}** | "
                f"{ordered[-1]:.2f} | {percentile(reads, 0.5):.2f} | "
                f"{percentile(reads, 0.99):.2f} |")
        lines.append("")
        for lag in lags:
            ordered = sorted(lag.lags_ms) or [float("nan")]
            p99 = percentile(ordered, 0.99)
            verdict = "met" if p99 < TARGET_LAG_P99_MS else "NOT met"
            target = (f" (target < {TARGET_LAG_P99_MS:g} ms at {TARGET_RATE} calls/s: "
                      f"{verdict})" if lag.rate == TARGET_RATE else "")
            lines.append(
                f"- {lag.label} calls/s: lag p99 **{p99:.2f} ms**{target}; CPU: "
                f"{cpu_text(lag.cpu, 'this listener')}.")
            manager = [w for w in lag.backlogs if "stasis/m:manager" in w]
            if lag.backlogs:
                lines.append(
                    f"  Asterisk warned {len(lag.backlogs)} times that a taskprocessor queue "
                    f"reached its high-water mark, {len(manager)} of them "
                    "`stasis/m:manager:core`: the one thread that turns every stasis message "
                    "into an AMI event, for every event Asterisk raises whatever the sessions' "
                    "filters (they act afterwards, per session).")
            if lag.failed:
                lines.append(
                    f"  {lag.failed} of {lag.calls} calls failed (sipp gave up waiting for "
                    f"the hang-up; {lag.answered} answered): the calls fell behind, waited "
                    "in the queue, and the lag grew with them.")
        lines += [
            "- Events handled at the highest rate, by name: " + ", ".join(
                f"{name} {n}" for name, n in max(lags, key=lambda g: g.rate).names.most_common())
            + ".",
            "",
        ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------

def declined_types() -> list[str]:
    """The stasis message types the sandbox's stasis.conf declines."""
    text = (REPO / "asterisk_conf" / "sandbox" / "stasis.conf").read_text()
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.startswith("decline=")]


def restore_sandbox(environ: Mapping[str, str]) -> None:
    """`hotline asterisk up` in the normal configuration (no bench users or extensions)."""
    clean = {k: v for k, v in environ.items() if not k.startswith("HOTLINE_")}
    subprocess.run([str(REPO / ".venv" / "bin" / "hotline"), "asterisk", "up"], env=clean,
                   cwd=REPO, check=False, stdout=subprocess.DEVNULL)


def live_phases(args: argparse.Namespace, command: str) -> tuple[Recording, list[Lag], Path]:
    environ = dict(os.environ)
    bench = AmiBench(counsellors=args.counsellors, var_dir=VAR_DIR)
    db_copy = VAR_DIR / "replay-template.sqlite3"
    lags: list[Lag] = []
    with sandbox_lock():
        try:
            bench.start()
            bench.start_softphones()
            ready = bench.wait_members()
            console.print(f"{ready} bench counsellors ready in the psych queue")
            recording = asyncio.run(record(bench, calls=args.record_calls,
                                           rate=args.record_rate, perf=args.perf))
            recording.meta["command"] = command
            recording.save(STREAM)
            console.print(f"recorded {len(recording.events)} events of "
                          f"{args.record_calls} calls into {STREAM}")
            from hotline.config import load_settings

            copy_sqlite(sqlite_path(load_settings().database_url), db_copy)
            if args.seconds > 0 and args.rate:
                # The benchmark's listener replaces the backend's (queue membership too), so
                # the machine does the work it does in production, once.
                bench.restart_backend(HOTLINE_AMI__ENABLED="false")
                # slowest first: a rate the machine cannot carry leaves Asterisk behind
                runs = sorted([(rate, PRODUCTION_INTERVAL) for rate in args.rate]
                              + [(rate, 0.0) for rate in args.per_poke_rate])
                for rate, interval in runs:
                    bench.wait_idle()
                    with tempfile.TemporaryDirectory(prefix="bench-ami-lag-") as tmp:
                        lag = asyncio.run(measure_lag(bench, rate=rate, seconds=args.seconds,
                                                      workdir=Path(tmp),
                                                      min_pass_interval=interval))
                    lags.append(lag)
                    console.print(lag_line(lag))
        finally:
            with contextlib.suppress(Exception):
                bench.stop_softphones()
            bench.stop()
            restore_sandbox(environ)
    return recording, lags, db_copy


def lag_line(lag: Lag) -> str:
    ordered = sorted(lag.lags_ms) or [float("nan")]
    return (f"lag at {lag.label} calls/s: p50 {percentile(ordered, 0.5):.2f} ms, "
            f"p99 {percentile(ordered, 0.99):.2f} ms, max {ordered[-1]:.2f} ms, "
            f"{lag.events / lag.seconds:,.0f} events/s, {lag.failed} of {lag.calls} calls "
            f"failed, machine {100 * lag.cpu['machine'] / (os.cpu_count() or 1):.0f} % busy")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--record-calls", type=int, default=600)
    parser.add_argument("--record-rate", type=int, default=20)
    parser.add_argument("--rate", type=int, nargs="*", default=[20, 40],
                        help="calls/s of each lag run")
    parser.add_argument("--per-poke-rate", type=int, nargs="*", default=[],
                        help="calls/s of lag runs with a QueueMemberSync pass per poke "
                             f"(production's passes are at least {PRODUCTION_INTERVAL:g} s "
                             "apart)")
    parser.add_argument("--seconds", type=int, default=30, help="length of a lag run (0: none)")
    parser.add_argument("--counsellors", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3, help="replays of each stream")
    parser.add_argument("--replay-only", action="store_true",
                        help=f"replay {STREAM.relative_to(REPO)} again (no sandbox) and write "
                             "the report with the last lag runs")
    parser.add_argument("--profile", action="store_true",
                        help="pyinstrument profile of a replay of each stream")
    parser.add_argument("--perf", action="store_true",
                        help="perf profile of Asterisk while the stream is recorded")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python -m bench.ami", *sys.argv[1:]])
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    db_copy = VAR_DIR / "replay-template.sqlite3"
    if args.replay_only:
        if not STREAM.exists() or not db_copy.exists():
            raise SystemExit(f"no recording at {STREAM}: run without --replay-only first")
        recording = Recording.load(STREAM)
        lags = Lag.load_all(LAG) if LAG.exists() else []
    else:
        recording, lags, db_copy = live_phases(args, command)
        Lag.save_all(lags, LAG)
    user = backend_user(MANAGER_TEMPLATE)
    raws = recording.raws
    streams = {"unfiltered": raws, "filtered": received_by(user, raws)}
    from hotline.config import load_settings

    redis_url = load_settings().redis.url
    replays = replay_all(recording, streams, db_template=db_copy, redis_url=redis_url,
                         repeat=args.repeat, profile=args.profile)
    parse = {name: parse_cost(raws) for name, raws in streams.items()}
    text = report(recording, streams, replays, lags, parse=parse, user=user, command=command)
    console.print(text, markup=False)
    write_sections(args.output, {HEADING: text})
    console.print(f"written to {args.output}")
    table = Table(title="AMI listener")
    for column in ("stream", "events/call", "replay events/s", "CPU µs/event"):
        table.add_column(column)
    calls = max(1, recording.meta["calls"] - recording.meta["failed"])
    for name, runs in replays.items():
        run = median_run(runs)
        table.add_row(name, f"{len(streams[run.stream]) / calls:.1f}", f"{run.rate:,.0f}",
                      f"{run.cpu_us:.1f}")
    console.print(table)
    for lag in lags:
        console.print(lag_line(lag))


if __name__ == "__main__":
    main()
