"""Benchmark: the IVR step through our backend against the same step in pure dialplan.

One run, side by side: N sipp calls at R calls/s to 99002 (Answer, caller-ID clean-up,
Read a digit during the Mandarin welcome, MSet the route, Hangup — pure dialplan) and N
calls to 99001 (the same steps, but the digit is read and the route decided by our
FastAGI `ivr` route). Both paths cross the AMI listener and the call journal. Reports
CPU per call of Asterisk and of the backend process (FastAGI, AMI listener, SQL and Redis
client work), the database server's CPU apart when it is PostgreSQL, and failed calls;
writes docs/benchmarks.md.

    .venv/bin/python -m bench.ivr --calls 800 --rate 40 [--db postgresql]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.report import write_sections

REPO = Path(__file__).resolve().parents[1]
WEB_PORT = 18090
AGI_PORT = 14590
TICKS = os.sysconf("SC_CLK_TCK")
console = Console()


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def create_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from hotline.db.engine import create_sync_engine_for

    target = make_url(url)
    admin = create_sync_engine_for(target.set(database="postgres")).execution_options(
        isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                    {"name": target.database}).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.engine.dispose()


def pids_named(name: str) -> list[int]:
    result = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(pid) for pid in result.stdout.split()]


@dataclass
class Phase:
    name: str
    calls: int
    failed: int
    seconds: float
    asterisk_cpu: float
    backend_cpu: float
    postgres_cpu: float
    redis_cpu: float

    def per_call_ms(self, cpu: float) -> float:
        return 1000 * cpu / max(self.calls, 1)


class Bench:
    def __init__(self, *, calls: int, rate: int, db: str, var_dir: Path) -> None:
        self.calls = calls
        self.rate = rate
        self.db = db
        self.var_dir = var_dir
        self.env = {
            **os.environ,
            "HOTLINE_VAR_DIR": str(var_dir),
            "HOTLINE_WEB__PORT": str(WEB_PORT),
            "HOTLINE_AGI__PORT": str(AGI_PORT),
            "HOTLINE_AGI__URL": f"agi://127.0.0.1:{AGI_PORT}",
            "HOTLINE_ASTERISK__BENCH": "true",
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
        if db == "postgresql":
            self.env["HOTLINE_DATABASE__URL"] = os.environ.get(
                "HOTLINE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/hotline_bench")
        self.backend: subprocess.Popen[bytes] | None = None

    def hotline(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=self.env, cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL)

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/api/health",
                                    timeout=5) as reply:
            return dict(json.loads(reply.read()))

    def start(self) -> None:
        from hotline.config import load_settings
        from hotline.redis_service import ensure_redis

        os.environ.update({k: v for k, v in self.env.items() if k.startswith("HOTLINE_")})
        if self.db == "postgresql":
            create_database(self.env["HOTLINE_DATABASE__URL"])
        settings = load_settings()
        ensure_redis(settings.redis.url, self.var_dir)
        self.hotline("demo")
        self.prepare()
        self.hotline("asterisk", "up")
        log = (self.var_dir / "bench-backend.log").open("ab")
        self.backend = subprocess.Popen([sys.executable, "-m", "hotline.cli", "serve"],
                                        env=self.env, cwd=REPO, stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.health()["components"]["ami"]["status"] == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise SystemExit("backend did not come up; see bench-backend.log")
        from hotline.asterisk.sandbox import AsteriskSandbox

        self.sandbox = AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                                       var_dir=self.var_dir)

    def prepare(self) -> None:
        """Hook: runs after the demo data is seeded, before Asterisk's configuration is
        rendered from the database."""

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.terminate()
            self.backend.wait(timeout=20)

    def wait_journal_drained(self) -> None:
        time.sleep(1.0)  # the last hang-ups' events are still on their way
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            detail = self.health()["components"]["database"]["detail"]
            if detail.get("journal_pending", 1) == 0:
                return
            time.sleep(1.0)

    def sipp(self, number: str, calls: int, rate: int, port: int) -> int:
        """Run the callers; return failed calls."""
        stat = self.var_dir / f"sipp-{number}-{port}.csv"
        stat.unlink(missing_ok=True)
        command = ["sipp", "-sf", str(REPO / "bench" / "bench_caller.xml"), "-s", number,
                   "-i", "127.0.0.2", "-p", str(port), "-mp", str(port + 2),
                   "-r", str(rate), "-m", str(calls), "-l", str(rate * 20),
                   "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1",
                   "-timeout", f"{calls // rate + 120}s", "127.0.0.1:5060"]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        with stat.open() as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        header, last = rows[0], rows[-1]
        failed = int(last[header.index("FailedCall(C)")])
        succeeded = int(last[header.index("SuccessfulCall(C)")])
        return failed + max(0, calls - failed - succeeded)

    def phase(self, name: str, number: str, port: int) -> Phase:
        assert self.backend is not None
        self.sipp(number, max(self.rate, 20), self.rate, port)  # warm-up, not counted
        self.wait_journal_drained()
        asterisk = [self.sandbox.asterisk_pid() or 0]
        postgres, redis = pids_named("postgres"), pids_named("redis-server")
        before = (cpu_seconds(asterisk), cpu_seconds([self.backend.pid]), cpu_seconds(postgres),
                  cpu_seconds(redis))
        started = time.monotonic()
        failed = self.sipp(number, self.calls, self.rate, port + 10)
        self.wait_journal_drained()
        seconds = time.monotonic() - started
        after = (cpu_seconds(asterisk), cpu_seconds([self.backend.pid]), cpu_seconds(postgres),
                 cpu_seconds(redis))
        delta = [a - b for a, b in zip(after, before, strict=True)]
        return Phase(name, self.calls, failed, seconds, *delta)


def report(phases: list[Phase], *, rate: int, db: str) -> str:
    dialplan, agi = phases
    ratio = agi.backend_cpu / agi.asterisk_cpu if agi.asterisk_cpu else float("inf")
    lines = [
        f"## IVR step: FastAGI backend against pure dialplan — {db}",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores), {dialplan.calls} calls per path at {rate} calls/s, "
        f"database {db}. Command: `.venv/bin/python -m bench.ivr --calls {dialplan.calls} "
        f"--rate {rate} --db {db}`.",
        "",
        "Each call: sipp on the carrier address dials, Asterisk answers, cleans the caller ID, "
        "plays the Mandarin welcome, the caller presses 1 (RFC 4733), the route variables are "
        "set, Asterisk hangs up. Path `dialplan` does the digit and the route in dialplan "
        "(`Read`, `MSet`); path `fastagi` runs our `ivr` route (prompt, digit, decision in "
        "`routing/`, one `MSet`). Both cross the AMI listener and the call journal (SQL) and "
        "Redis live state. CPU is user+system time read from /proc over the measured window "
        "(until the journal has written everything).",
        "",
        "| path | calls | failed | Asterisk CPU/call | backend CPU/call | PostgreSQL CPU/call "
        "| Redis CPU/call | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in phases:
        lines.append(
            f"| {phase.name} | {phase.calls} | {phase.failed} | "
            f"{phase.per_call_ms(phase.asterisk_cpu):.2f} ms | "
            f"{phase.per_call_ms(phase.backend_cpu):.2f} ms | "
            f"{phase.per_call_ms(phase.postgres_cpu):.2f} ms | "
            f"{phase.per_call_ms(phase.redis_cpu):.2f} ms | {phase.seconds:.1f} |")
    lines += [
        "",
        f"- Backend CPU per FastAGI call ÷ Asterisk CPU for the same calls: **{ratio:.2f}** "
        "(target ≤ 0.5).",
        f"- Asterisk CPU per call, FastAGI path ÷ pure dialplan: "
        f"{agi.asterisk_cpu / dialplan.asterisk_cpu if dialplan.asterisk_cpu else 0:.2f}.",
        f"- Failed calls: {dialplan.failed} (dialplan), {agi.failed} (FastAGI).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--rate", type=int, default=40)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], nargs="+",
                        default=["sqlite", "postgresql"])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    sections: dict[str, str] = {}
    table = Table(title="per call")
    for column in ("database", "path", "failed", "Asterisk ms", "backend ms", "PostgreSQL ms"):
        table.add_column(column)
    for db in args.db:
        var_dir = REPO / "var" / f"bench-{db}"
        var_dir.mkdir(parents=True, exist_ok=True)
        bench = Bench(calls=args.calls, rate=args.rate, db=db, var_dir=var_dir)
        bench.start()
        try:
            phases = [bench.phase("dialplan", "99002", 47000),
                      bench.phase("fastagi", "99001", 47100)]
        finally:
            bench.stop()
        section = report(phases, rate=args.rate, db=db)
        sections[section.splitlines()[0]] = section
        for phase in phases:
            table.add_row(db, phase.name, str(phase.failed),
                          f"{phase.per_call_ms(phase.asterisk_cpu):.2f}",
                          f"{phase.per_call_ms(phase.backend_cpu):.2f}",
                          f"{phase.per_call_ms(phase.postgres_cpu):.2f}")
    write_sections(args.output, sections)
    console.print(table)
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
