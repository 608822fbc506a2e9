"""Checking and converting uploaded prompt audio (pydub, ffmpeg) and text (espeak-ng)."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from hotline.prompts import audio
from hotline.prompts.audio import AudioRejected

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed")


def write_wav(path: Path, *, rate: int = 44100, channels: int = 2, seconds: float = 1.0,
              amplitude: int = 8000, frequency: float = 440.0) -> Path:
    frames = bytearray()
    for i in range(int(rate * seconds)):
        value = int(amplitude * math.sin(2 * math.pi * frequency * i / rate))
        frames += struct.pack("<h", value) * channels
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(bytes(frames))
    return path


def wav_format(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as handle:
        return (handle.getframerate(), handle.getnchannels(), handle.getsampwidth(),
                handle.getnframes() / handle.getframerate())


def test_sniff_looks_at_the_content_not_the_name() -> None:
    assert audio.sniff(b"RIFF\x24\x00\x00\x00WAVEfmt ") == "wav"
    assert audio.sniff(b"ID3\x04\x00\x00\x00\x00\x00\x00") == "mp3"
    assert audio.sniff(b"\xff\xfb\x90\x64\x00") == "mp3"
    assert audio.sniff(b"hello, this is text") is None
    assert audio.sniff(b"") is None


def test_a_44khz_stereo_wav_becomes_8khz_mono_16bit(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "in.wav", rate=44100, channels=2, seconds=1.5)
    target = tmp_path / "out.wav"
    converted = audio.convert_upload(source, target, max_seconds=600)
    rate, channels, width, seconds = wav_format(target)
    assert (rate, channels, width) == (8000, 1, 2)
    assert seconds == pytest.approx(1.5, abs=0.05)
    assert converted.duration_ms == pytest.approx(1500, abs=50)
    assert converted.details["format"] == "wav"
    assert (converted.details["sample_rate"], converted.details["channels"]) == (44100, 2)


@needs_ffmpeg
def test_an_mp3_made_by_ffmpeg_is_converted(tmp_path: Path) -> None:
    source = tmp_path / "in.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=frequency=440:duration=2:sample_rate=44100", "-ac", "2",
                    "-b:a", "128k", str(source)], check=True)
    target = tmp_path / "out.wav"
    converted = audio.convert_upload(source, target, max_seconds=600)
    rate, channels, width, seconds = wav_format(target)
    assert (rate, channels, width) == (8000, 1, 2)
    assert seconds == pytest.approx(2.0, abs=0.15)
    assert converted.details["format"] == "mp3"


@needs_ffmpeg
def test_an_over_long_mp3_is_refused_without_decoding_all_of_it(tmp_path: Path) -> None:
    source = tmp_path / "long.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi",
                    "-i", "sine=frequency=300:duration=8", "-b:a", "32k", str(source)],
                   check=True)
    with pytest.raises(AudioRejected, match="too long") as caught:
        audio.convert_upload(source, tmp_path / "out.wav", max_seconds=3)
    assert caught.value.detail["max_seconds"] == 3
    assert caught.value.detail["duration_seconds"] <= 4.5
    assert not (tmp_path / "out.wav").exists()


def test_a_broken_wav_is_refused(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", seconds=0.5).read_bytes()
    broken = tmp_path / "broken.wav"
    # The RIFF/WAVE header is there; the format chunk and the data are garbage.
    broken.write_bytes(good[:12] + b"\x13\x37" * 40)
    with pytest.raises(AudioRejected, match="damaged or not audio") as caught:
        audio.convert_upload(broken, tmp_path / "out.wav", max_seconds=600)
    assert caught.value.detail["format"] == "wav"
    assert str(tmp_path) not in caught.value.detail["reason"]  # no server paths in errors
    assert not (tmp_path / "out.wav").exists()


def test_a_wav_cut_off_before_its_end_is_refused(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", seconds=1).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good[: len(good) // 2 + 1])
    with pytest.raises(AudioRejected, match="incomplete"):
        audio.convert_upload(cut, tmp_path / "out.wav", max_seconds=600)
    assert not audio.wav_truncated(tmp_path / "good.wav")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioRejected, match="empty"):
        audio.convert_upload(empty, tmp_path / "out.wav", max_seconds=600)


def test_a_wav_with_no_samples_is_refused(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "none.wav", seconds=0)
    with pytest.raises(AudioRejected, match="empty"):
        audio.convert_upload(source, tmp_path / "out.wav", max_seconds=600)


def test_a_text_file_renamed_wav_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("这不是录音，只是一段文字。\n", encoding="utf-8")
    with pytest.raises(AudioRejected, match="not a WAV or MP3 file"):
        audio.convert_upload(text, tmp_path / "out.wav", max_seconds=600)


def test_a_silent_recording_is_refused(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "silence.wav", amplitude=0, seconds=2)
    with pytest.raises(AudioRejected, match="silent"):
        audio.convert_upload(source, tmp_path / "out.wav", max_seconds=600)
    hiss = write_wav(tmp_path / "hiss.wav", amplitude=20, seconds=2)  # about -64 dBFS
    with pytest.raises(AudioRejected, match="silent"):
        audio.convert_upload(hiss, tmp_path / "out.wav", max_seconds=600)


def test_an_over_long_wav_is_refused(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "long.wav", rate=8000, channels=1, seconds=3)
    with pytest.raises(AudioRejected, match="too long"):
        audio.convert_upload(source, tmp_path / "out.wav", max_seconds=2)


@needs_espeak
def test_text_is_spoken_in_mandarin(tmp_path: Path) -> None:
    target = tmp_path / "tts.wav"
    converted = audio.synthesize("你好，欢迎致电12355。", "zh", target, max_seconds=600)
    rate, channels, width, seconds = wav_format(target)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 1.0 < seconds < 10
    assert converted.details["voice"] == "cmn-latn-pinyin"


def test_text_needs_a_known_voice_and_some_words(tmp_path: Path) -> None:
    with pytest.raises(AudioRejected, match="voice"):
        audio.synthesize("bonjour", "fr", tmp_path / "x.wav", max_seconds=600)
    with pytest.raises(AudioRejected, match="empty"):
        audio.synthesize("  \n ", "zh", tmp_path / "x.wav", max_seconds=600)
    assert audio.clean_text('a<break time="9s"/>b\x07c') == 'a break time="9s"/ b c'
