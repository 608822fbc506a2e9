"""A voicemail message's audio: checked, measured, copied loudness-normalised for the web;
broken and empty files reported, never raised (voicemail.audio)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from voicemail.audio import MP3, OPUS, TARGET_LUFS, WebEncoding, prepare_message, read_message

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg)")

RATE = 8000  # what Asterisk's Record() writes: 8 kHz mono 16-bit


def write_message(path: Path, *, seconds: float = 3.0, level: float = 0.05,
                  pauses: bool = True) -> Path:
    """Speech-like phone audio: a 140 Hz voice with harmonics, in syllables of 0.25 s
    (or, without `pauses`, one long shout), peaking at `level` of full scale."""
    frames = bytearray()
    for i in range(int(RATE * seconds)):
        t = i / RATE
        voice = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 8))
        syllable = max(0.0, math.sin(2 * math.pi * 2 * t)) ** 2 if pauses else 1.0
        frames += struct.pack("<h", int(32767 * level * syllable * voice / 2.6))
    return _write(path, bytes(frames))


def write_silence(path: Path, *, seconds: float = 2.0) -> Path:
    return _write(path, b"\x00\x00" * int(RATE * seconds))


def _write(path: Path, frames: bytes) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(frames)
    return path


def lufs(path: Path) -> float:
    """Integrated loudness (EBU R128) as ffmpeg's ebur128 filter measures it."""
    result = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path),
                             "-af", "ebur128", "-f", "null", "-"],
                            capture_output=True, text=True, check=True)
    summary = result.stderr.rsplit("Summary:", 1)[-1]
    match = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    assert match, result.stderr[-500:]
    return float(match.group(1))


def probe(path: Path) -> dict[str, str]:
    result = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries",
                             "stream=codec_name,channels:format=format_name,duration", str(path)],
                            capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    return {**data["streams"][0], **data["format"]}


@needs_ffmpeg
@pytest.mark.parametrize(("level", "pauses"), [(0.03, True), (0.95, False)],
                         ids=["quiet", "shouted"])
def test_a_message_gets_a_normalised_opus_copy_and_stays_untouched(
        tmp_path: Path, level: float, pauses: bool) -> None:
    original = write_message(tmp_path / "msg.wav", level=level, pauses=pauses)
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    copy = tmp_path / "web" / "msg.ogg"

    result = prepare_message(original, copy)

    assert (result.status, result.reason, result.web_copy) == ("ok", "", copy)
    assert result.duration_seconds == pytest.approx(3.0, abs=0.01)
    assert result.peak_dbfs is not None and result.level_dbfs is not None
    assert hashlib.sha256(original.read_bytes()).hexdigest() == digest
    info = probe(copy)
    assert (info["codec_name"], info["format_name"], info["channels"]) == ("opus", "ogg", 1)
    assert float(info["duration"]) == pytest.approx(3.0, abs=0.1)
    assert copy.stat().st_size < original.stat().st_size / 4
    before, after = lufs(original), lufs(copy)
    assert abs(after - TARGET_LUFS) < abs(before - TARGET_LUFS) - 3, (before, after)
    assert abs(after - TARGET_LUFS) < 3, (before, after)
    assert [p.name for p in copy.parent.iterdir()] == ["msg.ogg"]  # no partial file left


@needs_ffmpeg
def test_the_copy_can_be_mp3_and_decodes_with_pydub(tmp_path: Path) -> None:
    from pydub import AudioSegment

    result = prepare_message(write_message(tmp_path / "msg.wav"), tmp_path / "msg.mp3",
                             encoding=MP3)
    assert result.status == "ok" and result.web_copy is not None
    decoded = AudioSegment.from_file(str(result.web_copy), format="mp3")
    assert decoded.duration_seconds == pytest.approx(3.0, abs=0.15)
    assert probe(result.web_copy)["codec_name"] == "mp3"


@needs_ffmpeg
def test_silence_is_reported_and_copied_without_raising_the_hiss(tmp_path: Path) -> None:
    original = write_silence(tmp_path / "silence.wav")
    result = prepare_message(original, tmp_path / "silence.ogg")
    assert result.status == "silent"
    assert "silent" in result.reason
    assert result.duration_seconds == pytest.approx(2.0)
    assert result.level_dbfs is None  # digital silence: no level at all
    assert result.web_copy is not None
    assert lufs(result.web_copy) < -60


@pytest.mark.parametrize(("content", "status", "reason"), [
    (b"", "empty", "0 bytes"),
    ("这不是录音，只是一段文字。\n".encode(), "broken", "not a WAV file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "broken", "header is cut off"),
], ids=["zero-bytes", "text-renamed-wav", "truncated-header"])
def test_files_without_audio_are_reported_not_raised(
        tmp_path: Path, content: bytes, status: str, reason: str) -> None:
    original = tmp_path / "msg.wav"
    original.write_bytes(content)
    copy = tmp_path / "msg.ogg"
    result = prepare_message(original, copy)
    assert result.status == status
    assert reason in result.reason
    assert str(tmp_path) not in result.reason  # no server paths in what the web shows
    assert (result.web_copy, result.duration_seconds) == (None, 0.0)
    assert not copy.exists()
    assert original.read_bytes() == content


def test_a_header_with_no_audio_is_empty(tmp_path: Path) -> None:
    # What Record() leaves when the caller hangs up at the beep.
    recording = read_message(write_silence(tmp_path / "msg.wav", seconds=0))
    assert (recording.status, recording.audio) == ("empty", None)
    assert "only a header" in recording.reason


def test_a_very_short_recording_is_empty(tmp_path: Path) -> None:
    recording = read_message(write_message(tmp_path / "msg.wav", seconds=0.05))
    assert recording.status == "empty"
    assert recording.audio is not None


@needs_ffmpeg
def test_a_file_cut_off_mid_recording_keeps_the_audio_that_is_there(tmp_path: Path) -> None:
    whole = write_message(tmp_path / "whole.wav", seconds=3.0).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: 44 + RATE * 2])  # the header and 1 s of the announced 3 s
    result = prepare_message(cut, tmp_path / "cut.ogg")
    assert result.status == "broken"
    assert result.reason == "the file is cut off: 1.0 s of the 3.0 s its header announces"
    assert result.duration_seconds == pytest.approx(1.0)
    assert result.web_copy is not None
    assert float(probe(result.web_copy)["duration"]) == pytest.approx(1.0, abs=0.1)


def test_a_header_never_completed_is_read_to_the_end_of_the_file(tmp_path: Path) -> None:
    data = bytearray(write_message(tmp_path / "msg.wav", seconds=2.0).read_bytes())
    data[4:8] = data[40:44] = b"\x00\x00\x00\x00"  # as while Asterisk is still recording
    (tmp_path / "msg.wav").write_bytes(bytes(data))
    recording = read_message(tmp_path / "msg.wav")
    assert recording.status == "broken"
    assert "never completed" in recording.reason
    assert recording.duration_seconds == pytest.approx(2.0)


def test_a_header_cut_off_before_its_audio_is_broken(tmp_path: Path) -> None:
    whole = write_message(tmp_path / "whole.wav", seconds=1.0).read_bytes()
    (tmp_path / "msg.wav").write_bytes(whole[:44])
    recording = read_message(tmp_path / "msg.wav")
    assert (recording.status, recording.audio) == ("broken", None)
    assert "right after its header" in recording.reason


def test_an_encoder_failure_leaves_the_status_and_no_copy(tmp_path: Path) -> None:
    broken_encoder = WebEncoding(format="ogg", codec="no-such-codec", suffix=".ogg",
                                 bitrate="24k", sample_rates=OPUS.sample_rates)
    copy = tmp_path / "msg.ogg"
    result = prepare_message(write_message(tmp_path / "msg.wav"), copy,
                             encoding=broken_encoder)
    assert (result.status, result.web_copy) == ("ok", None)
    assert result.copy_error
    assert list(tmp_path.iterdir()) == [tmp_path / "msg.wav"]


def test_a_header_whose_sizes_lead_nowhere_is_broken(tmp_path: Path) -> None:
    data = bytearray(write_message(tmp_path / "msg.wav", seconds=1.0).read_bytes())
    data[36:40] = b"LIST"  # the data chunk renamed: its size now skips past the end
    (tmp_path / "msg.wav").write_bytes(bytes(data))
    recording = read_message(tmp_path / "msg.wav")
    assert (recording.status, recording.audio) == ("broken", None)
    assert "damaged" in recording.reason
