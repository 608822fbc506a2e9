"""Benchmark: the backend's own decision time per FastAGI step, many callers in the menu.

N sipp calls to 99001 (Answer, caller-ID clean-up, our FastAGI `ivr` route, Hangup), at most
C of them at once (`-l C`). Every caller lets the welcome play, presses an invalid key during
the menu, lets the "invalid" prompt play and presses a valid key during the repeated menu,
so one call makes these AGI steps: welcome STREAM FILE, GET DATA menu, STREAM FILE invalid,
GET DATA menu, EXEC MSet, and the end of the route. A step is the backend's own time: from
the moment Asterisk's answer (for the first step, the end of the AGI headers) has been read
to the moment the next command is written (agi/metrics.py). The backend runs with
`agi.keep_step_samples` on and the benchmark reads the raw samples for exact percentiles;
`/metrics` gives the SQL statements run inside FastAGI sessions (the routing path: must be
0) and all the SQL the backend ran meanwhile (the call journal's writes: > 0).

The clock (HOTLINE_CLOCK__OFFSET_SECONDS) is set to 10:00 on the next open day, so the day
menu answers whatever the hour of the run. Writes its sections to docs/benchmarks.md,
keeping the others.

    .venv/bin/python -m bench.menu --calls 1000 --concurrent 100 [--db sqlite postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from bench.ivr import REPO, WEB_PORT, Bench, console, cpu_seconds
from bench.report import write_sections

# 5 is on no menu of the default rules; 2 is legal help on the day menu.
INVALID_KEY = "5"
VALID_KEY = "2"
DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_{}.pcap")
# The steps of one call as the default rules make them: (step number, command) → name.
STEP_NAMES = {(1, "STREAM FILE"): "welcome (STREAM FILE; includes the session's set-up)",
              (2, "GET DATA"): "menu (GET DATA)",
              (3, "STREAM FILE"): "invalid key (STREAM FILE)",
              (4, "GET DATA"): "menu again (GET DATA)",
              (5, "EXEC MSet"): "route variables (EXEC MSet)",
              (6, "end"): "end of the route (journal record, return)"}
TARGET_P99_MS = 5.0


def open_day_offset(now: datetime) -> float:
    """Seconds to add to `now` for 10:00 local on the next day the default rules are open."""
    from hotline.rules.calendar_source import build_calendar, years_around
    from routing.defaults import default_rules
    from routing.hours import is_open

    rules = default_rules()
    zone = ZoneInfo(rules.timezone)
    calendar = build_calendar(years_around(now.date()), {})
    day: date = now.astimezone(zone).date()
    for _ in range(60):
        day += timedelta(days=1)
        candidate = datetime.combine(day, clock_time(10, 0), zone)
        if is_open(rules.hours.site, calendar, candidate):
            return (candidate - now).total_seconds()
    raise SystemExit("no open day in the next 60 days with the default rules")


def prompt_seconds(sounds_dir: Path, language: str, name: str) -> float:
    for folder in (sounds_dir / language, sounds_dir):
        path = folder / f"{name}.wav"
        if path.exists():
            with wave.open(str(path)) as audio:
                return audio.getnframes() / audio.getframerate()
    raise SystemExit(f"prompt {name} not found under {sounds_dir}; run `hotline prompts build`")


def later_key_pcap(key: str, after: str | Path, target: Path) -> Path:
    """sip-tester's recording of `key`, its RTP timestamps and sequence numbers moved past
    those of `after` (a key, meaning its recording, or a pcap file made by this function,
    to chain several keys).

    Every recording starts its RTP stream afresh, and Asterisk ignores a telephone event
    whose timestamp is not after the last one it saw in the call: `2` played after `5` (an
    older timestamp) is never heard. Only the RTP header changes; sipp writes the IP and
    UDP headers itself.
    """
    def packets(data: bytes) -> list[tuple[int, int]]:
        """(offset of the RTP header, its length) of every packet."""
        found, offset = [], 24
        while offset < len(data):
            length = struct.unpack_from("<I", data, offset + 8)[0]
            frame = offset + 16
            ip = frame + 14
            udp = ip + 4 * (data[ip] & 0x0F)
            found.append((udp + 8, frame + length - udp - 8))
            offset = frame + length
        return found

    def last_seq_and_ts(data: bytes) -> tuple[int, int]:
        rtp, _ = packets(data)[-1]
        seq, ts = struct.unpack_from("!HI", data, rtp + 2)
        return seq, ts

    previous = after if isinstance(after, Path) else DTMF_PCAP.with_name(
        DTMF_PCAP.name.format(after))
    last_seq, last_ts = last_seq_and_ts(previous.read_bytes())
    data = bytearray(DTMF_PCAP.with_name(DTMF_PCAP.name.format(key)).read_bytes())
    first = packets(bytes(data))[0][0]
    first_seq, first_ts = struct.unpack_from("!HI", data, first + 2)
    seq_shift = (last_seq + 100 - first_seq) % 65536
    ts_shift = (last_ts + 8000 * 5 - first_ts) % 2**32  # five seconds later
    for rtp, _ in packets(bytes(data)):
        seq, ts = struct.unpack_from("!HI", data, rtp + 2)
        struct.pack_into("!HI", data, rtp + 2, (seq + seq_shift) % 65536,
                         (ts + ts_shift) % 2**32)
    target.write_bytes(bytes(data))
    return target


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.machine()


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Figures:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Figures:
        ordered = sorted(seconds)
        return cls(len(ordered), 1000 * percentile(ordered, 0.5),
                   1000 * percentile(ordered, 0.9), 1000 * percentile(ordered, 0.99),
                   1000 * ordered[-1])

    def cells(self) -> str:
        return (f"{self.count} | {self.p50:.3f} | {self.p90:.3f} | {self.p99:.3f} | "
                f"{self.max:.3f}")


@dataclass
class Result:
    db: str
    calls: int
    concurrent: int
    rate: int
    failed: int
    seconds: float
    overall: Figures
    by_step: list[tuple[str, Figures]]
    routing_queries: float
    other_statements: float
    journal_calls: int
    journal_events: int
    routes: dict[str, int]
    max_sessions: float
    mean_sessions: float
    backend_cpu_ms: float
    pauses_ms: tuple[int, int]
    local_time: str
    started: datetime


class MenuBench(Bench):
    def __init__(self, *, calls: int, concurrent: int, db: str, var_dir: Path) -> None:
        super().__init__(calls=calls, rate=1, db=db, var_dir=var_dir)
        self.concurrent = concurrent
        self.offset = open_day_offset(datetime.now(UTC))
        self.env["HOTLINE_AGI__KEEP_STEP_SAMPLES"] = "true"
        self.env["HOTLINE_CLOCK__OFFSET_SECONDS"] = f"{self.offset:.0f}"
        self.token = ""

    def start(self) -> None:
        super().start()
        reply = subprocess.run([sys.executable, "-m", "hotline.cli", "users", "token", "admin",
                                "--name", "bench-menu", "--expires-in-days", "1"],
                               env=self.env, cwd=REPO, check=True, capture_output=True,
                               text=True)
        self.token = reply.stdout.strip().splitlines()[-1]

    def request(self, method: str, path: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"} if path.startswith("/api/") else {}
        call = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}{path}", method=method,
                                      headers=headers)
        with urllib.request.urlopen(call, timeout=30) as reply:
            return bytes(reply.read())

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, summed over its labels."""
        totals: dict[str, float] = defaultdict(float)
        text = self.request("GET", "/metrics").decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] += sample.value
        return totals

    def journal_rows(self) -> tuple[Counter[str], int]:
        """Calls by route, queue and digits, and the number of call events, as the database
        has them."""
        from sqlalchemy import func, select

        from hotline.config import load_settings
        from hotline.db.engine import create_sync_engine_for
        from hotline.db.models import Call, CallEvent

        engine = create_sync_engine_for(load_settings().database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(Call.route, Call.queue, Call.digits, func.count())
                    .group_by(Call.route, Call.queue, Call.digits)).all()
                events = connection.execute(select(func.count()).select_from(CallEvent))
                event_count = int(events.scalar_one())
        finally:
            engine.dispose()
        return Counter({f"{route} {queue} {digits}": int(n)
                        for route, queue, digits, n in rows}), event_count

    def scenario(self) -> tuple[Path, tuple[int, int]]:
        from hotline.config import load_settings

        language = load_settings().asterisk.sounds_language
        sounds = self.sandbox.sounds_dir
        welcome = prompt_seconds(sounds, language, "hotline/welcome")
        invalid = prompt_seconds(sounds, language, "hotline/invalid")
        # The first key lands 2 s into the menu prompt, the second 1.8 s into the repeated
        # one: room for Asterisk to be late, and well before either prompt ends.
        pauses = (round(1000 * welcome) + 2000, round(1000 * invalid) + 1800)
        text = (REPO / "bench" / "menu_caller.xml").read_text()
        valid_pcap = later_key_pcap(
            VALID_KEY, INVALID_KEY,
            self.var_dir / f"dtmf_2833_{VALID_KEY}_after_{INVALID_KEY}.pcap")
        invalid_pcap = DTMF_PCAP.with_name(DTMF_PCAP.name.format(INVALID_KEY))
        for marker, value in (("@FIRST_KEY_MS@", pauses[0]), ("@SECOND_KEY_MS@", pauses[1]),
                              ("@INVALID_PCAP@", invalid_pcap), ("@VALID_PCAP@", valid_pcap)):
            text = text.replace(marker, str(value))
        path = self.var_dir / "menu_caller.xml"
        path.write_text(text)
        return path, pauses

    def sipp_menu(self, scenario: Path, calls: int, rate: int, port: int) -> int:
        """Run the callers, at most `concurrent` at once; return failed calls."""
        stat = self.var_dir / f"sipp-menu-{port}.csv"
        stat.unlink(missing_ok=True)
        command = ["sipp", "-sf", str(scenario), "-s", "99001", "-i", "127.0.0.2",
                   "-p", str(port), "-mp", str(port + 2), "-r", str(rate),
                   "-l", str(self.concurrent), "-m", str(calls), "-nostdin", "-trace_stat",
                   "-stf", str(stat), "-fd", "1", "-timeout", f"{calls // rate + 180}s",
                   "127.0.0.1:5060"]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        with stat.open() as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        header, last = rows[0], rows[-1]
        failed = int(last[header.index("FailedCall(C)")])
        succeeded = int(last[header.index("SuccessfulCall(C)")])
        return failed + max(0, calls - failed - succeeded)

    def watch_sessions(self, stop: threading.Event, seen: list[float]) -> None:
        while not stop.wait(1.0):
            with contextlib.suppress(OSError):
                seen.append(self.metrics().get("hotline_agi_sessions", 0.0))

    def run(self) -> Result:
        assert self.backend is not None
        run_started = datetime.now(UTC)
        scenario, pauses = self.scenario()
        call_seconds = (pauses[0] + pauses[1]) / 1000 + 0.5
        # A little faster than the calls end, so sipp's limit keeps `concurrent` in the menu.
        rate = max(1, math.ceil(1.2 * self.concurrent / call_seconds))
        self.sipp_menu(scenario, max(self.concurrent, self.calls // 10), rate, 46000)  # warm-up
        self.wait_journal_drained()
        self.request("DELETE", "/api/agi/step-samples")
        before = self.metrics()
        routes_before, events_before = self.journal_rows()
        cpu_before = cpu_seconds([self.backend.pid])
        stop, sessions = threading.Event(), list[float]()
        watcher = threading.Thread(target=self.watch_sessions, args=(stop, sessions))
        watcher.start()
        started = time.monotonic()
        try:
            failed = self.sipp_menu(scenario, self.calls, rate, 46100)
        finally:
            stop.set()
            watcher.join()
        self.wait_journal_drained()
        seconds = time.monotonic() - started
        backend_cpu = cpu_seconds([self.backend.pid]) - cpu_before
        after = self.metrics()
        routes_after, events_after = self.journal_rows()
        document = json.loads(self.request("GET", "/api/agi/step-samples"))
        samples = [(step, kind, value) for route, step, kind, value in document["samples"]
                   if route == "ivr"]
        if not samples:
            raise SystemExit("no AGI step samples: is agi.keep_step_samples on?")
        grouped: dict[tuple[int, str], list[float]] = defaultdict(list)
        for step, kind, value in samples:
            grouped[(step, kind)].append(value)
        by_step = [(STEP_NAMES.get(key, f"step {key[0]} ({key[1]})"), Figures.of(values))
                   for key, values in sorted(grouped.items())]
        routes = {key: n - routes_before.get(key, 0) for key, n in routes_after.items()
                  if n != routes_before.get(key, 0)}
        running = sorted(sessions)
        local = datetime.now(UTC) + timedelta(seconds=self.offset)
        return Result(
            db=self.db, calls=self.calls, concurrent=self.concurrent, rate=rate, failed=failed,
            seconds=seconds, overall=Figures.of([value for *_, value in samples]),
            by_step=by_step,
            routing_queries=(after.get("hotline_agi_db_queries_total", 0.0)
                             - before.get("hotline_agi_db_queries_total", 0.0)),
            other_statements=(after.get("hotline_db_statements_total", 0.0)
                              - before.get("hotline_db_statements_total", 0.0)),
            journal_calls=sum(routes.values()), journal_events=events_after - events_before,
            routes=routes, max_sessions=running[-1] if running else 0.0,
            mean_sessions=(sum(running[len(running) // 10:len(running) * 9 // 10])
                           / max(1, len(running) * 9 // 10 - len(running) // 10)),
            backend_cpu_ms=1000 * backend_cpu / max(1, self.calls), pauses_ms=pauses,
            local_time=f"{local.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M} "
                       "Asia/Shanghai", started=run_started)


def heading(db: str) -> str:
    return f"## FastAGI decision time per AGI step, callers held in the menu — {db}"


def report(result: Result) -> str:
    verdict = "met" if result.overall.p99 <= TARGET_P99_MS else "NOT met"
    routes = ", ".join(f"`{key}` {n}" for key, n in sorted(result.routes.items()))
    lines = [
        heading(result.db),
        "",
        f"Run {result.started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} "
        f"cores, {cpu_model()}, shared with Asterisk, sipp and the database; Python "
        f"{platform.python_version()}), database {result.db}. Command: `.venv/bin/python -m "
        f"bench.menu --calls {result.calls} --concurrent {result.concurrent} --db "
        f"{result.db}`.",
        "",
        f"{result.calls} sipp calls to 99001 at {result.rate} calls/s with at most "
        f"{result.concurrent} at once (`-l {result.concurrent}`), after a warm-up run. Each "
        f"caller lets the welcome play, presses {INVALID_KEY} (no such option) "
        f"{result.pauses_ms[0]} ms after the answer, lets the \"invalid\" prompt play, presses "
        f"{VALID_KEY} (legal help) {result.pauses_ms[1]} ms later during the repeated menu; the "
        "route sets "
        "the variables (one `MSet`) and the dialplan hangs up. The backend's clock is set to "
        f"{result.local_time} (open hours, day menu). FastAGI sessions in progress, read from "
        f"`/metrics` every second: up to {result.max_sessions:.0f}, {result.mean_sessions:.0f} "
        "on average in the middle 80 % of the run. A step is the backend's own time, from "
        "Asterisk's answer read (first step: the end of the AGI headers) to the next command "
        "written (last step: the route's return); the figures are exact, from every step's "
        "sample (`agi.keep_step_samples`), not from histogram buckets.",
        "",
        "| step | steps | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
        f"| **all steps** | {result.overall.cells()} |",
    ]
    lines += [f"| {name} | {figures.cells()} |" for name, figures in result.by_step]
    lines += [
        "",
        f"- p99 per step: **{result.overall.p99:.3f} ms** (target ≤ {TARGET_P99_MS:g} ms: "
        f"{verdict}).",
        f"- SQL statements run inside FastAGI sessions (the routing path, "
        f"`hotline_agi_db_queries_total`): **{result.routing_queries:.0f}**. SQL statements "
        f"the backend ran in the same window outside them (`hotline_db_statements_total`: the "
        f"call journal's batched writes, the benchmark's health checks, the rules' reload "
        f"every minute): {result.other_statements:.0f}; the "
        f"journal wrote {result.journal_calls} calls and {result.journal_events} call events.",
        f"- Calls in the journal by route, queue and digits: {routes}.",
        f"- Failed calls: {result.failed}. Backend CPU per call: "
        f"{result.backend_cpu_ms:.2f} ms. Wall time: {result.seconds:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], nargs="+",
                        default=["sqlite", "postgresql"])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    table = Table(title="backend time per AGI step (ms)")
    for column in ("database", "steps", "p50", "p90", "p99", "max", "routing SQL",
                   "other SQL", "failed"):
        table.add_column(column)
    sections: dict[str, str] = {}
    for db in args.db:
        var_dir = REPO / "var" / f"bench-menu-{db}"
        var_dir.mkdir(parents=True, exist_ok=True)
        bench = MenuBench(calls=args.calls, concurrent=args.concurrent, db=db, var_dir=var_dir)
        bench.start()
        try:
            result = bench.run()
        finally:
            bench.stop()
        sections[heading(db)] = report(result)
        overall = result.overall
        table.add_row(db, str(overall.count), f"{overall.p50:.3f}", f"{overall.p90:.3f}",
                      f"{overall.p99:.3f}", f"{overall.max:.3f}",
                      f"{result.routing_queries:.0f}", f"{result.other_statements:.0f}",
                      str(result.failed))
        console.print(report(result), markup=False)
    write_sections(args.output, sections)
    console.print(table)
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
