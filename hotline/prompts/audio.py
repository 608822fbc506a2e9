"""Audio in, Asterisk WAV out: uploads (WAV, MP3) checked and converted with pydub, or text
spoken by espeak-ng.

Everything here blocks (pydub, ffmpeg, espeak-ng): call it from a worker thread
(``asyncio.to_thread``), never on the event loop. A rejected file raises ``AudioRejected``
with a message for the administrator; nothing is left at the target then.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.asterisk.prompts import (
    RATE,
    VOICES,
    asterisk_audio,
    audio_segment_class,
    espeak_command,
    export_wav,
)

#: Shorter than this is no recording at all.
MIN_DURATION_MS = 100
#: A recording whose loudest sample stays below this is silence (or hiss).
SILENT_PEAK_DBFS = -50.0
#: Longest text spoken by espeak-ng (about 12 minutes of Mandarin).
MAX_TEXT_CHARS = 2000
#: Speaking rate per language (words per minute); the built-in prompts use the same.
_RATES = {"zh": RATE, "en": 175}


class AudioRejected(Exception):
    """The file or text cannot become a prompt; `error` says why, for the administrator."""

    def __init__(self, error: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail or {}


class AudioUnavailable(RuntimeError):
    """A tool the conversion needs (ffmpeg, espeak-ng) is missing on this machine."""


@dataclass(frozen=True)
class Converted:
    """An Asterisk WAV written to `path`."""

    path: Path
    duration_ms: int
    details: dict[str, Any] = field(default_factory=dict)


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes: "wav", "mp3" or None (whatever the name or
    the Content-Type claimed)."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame: 11 sync bits, a version that is not "reserved", a layer.
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (
            head[1] & 0x18 != 0x08 and head[1] & 0x06 != 0):
        return "mp3"
    return None


def convert_upload(source: Path, target: Path, *, max_seconds: float) -> Converted:
    """Check an uploaded WAV or MP3 and write it to `target` as 8 kHz mono 16-bit WAV."""
    try:
        size = source.stat().st_size
        with source.open("rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise AudioRejected("the upload could not be read") from error
    if size == 0:
        raise AudioRejected("the file is empty", {"bytes": 0})
    kind = sniff(head)
    if kind is None:
        raise AudioRejected("not a WAV or MP3 file",
                            {"hint": "upload a .wav or .mp3 recording", "bytes": size})
    if kind == "wav" and wav_truncated(source):
        raise AudioRejected("the WAV file is incomplete (cut off before its end)",
                            {"format": kind, "bytes": size})
    audio = _decode(source, kind, max_seconds=max_seconds)
    if len(audio.raw_data) % max(1, audio.frame_width):
        raise AudioRejected(f"the {kind.upper()} file is damaged or not audio",
                            {"format": kind, "reason": "not a whole number of frames"})
    details = {"format": kind, "sample_rate": audio.frame_rate, "channels": audio.channels,
               "sample_width": audio.sample_width}
    return _finish(audio, target, max_seconds=max_seconds, details=details)


def wav_truncated(path: Path) -> bool:
    """Whether a WAV's data chunk is shorter than its header says (an interrupted upload).
    Sizes a streaming writer leaves open (0, 0xFFFFFFFF) count as unknown, not truncated."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(12)
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return False
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                return chunk_size not in (0, 0xFFFFFFFF) and handle.tell() + chunk_size > size
            handle.seek(chunk_size + (chunk_size & 1), 1)
            if handle.tell() >= size:
                return False


def synthesize(text: str, language: str, target: Path, *, max_seconds: float) -> Converted:
    """Speak `text` with espeak-ng (Mandarin or English) into `target` as an Asterisk WAV."""
    voice = VOICES.get(language)
    if voice is None:
        raise AudioRejected("no text-to-speech voice for this language",
                            {"language": language, "available": sorted(VOICES)})
    text = clean_text(text)
    if not text:
        raise AudioRejected("the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise AudioRejected("the text is too long",
                            {"characters": len(text), "max_characters": MAX_TEXT_CHARS})
    if shutil.which("espeak-ng") is None:
        raise AudioUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmpdir:
        raw = Path(tmpdir) / "speech.wav"
        command = espeak_command(text, raw, voice=voice, rate=_RATES.get(language, RATE),
                                 language=language)
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False,
                                    timeout=120)
        except subprocess.TimeoutExpired as error:
            raise AudioRejected("espeak-ng took too long for this text") from error
        if result.returncode != 0 or not raw.exists():
            raise AudioUnavailable(f"espeak-ng failed ({result.returncode}): "
                                   f"{result.stderr.strip()[:500]}")
        audio = audio_segment_class().from_wav(str(raw))
        return _finish(audio, target, max_seconds=max_seconds,
                       details={"voice": voice, "language": language})


def clean_text(text: str) -> str:
    """Text for espeak-ng: no control characters, no markup of the caller's own."""
    text = re.sub(r"[\x00-\x1f\x7f<>]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _decode(source: Path, kind: str, *, max_seconds: float) -> Any:
    if kind == "mp3" and shutil.which("ffmpeg") is None:
        raise AudioUnavailable("ffmpeg is not installed; it decodes MP3 (apt-get install ffmpeg)")
    audio_segment = audio_segment_class()
    try:
        if kind == "wav":
            # PCM is read directly; anything else (ADPCM, float…) goes through ffmpeg.
            return audio_segment.from_file(str(source), format="wav")
        # Decode a little past the limit only: a huge MP3 must not fill the memory.
        return audio_segment.from_file(str(source), format="mp3", duration=max_seconds + 1)
    except FileNotFoundError as error:
        raise AudioUnavailable(f"a decoder is missing: {error}") from error
    except Exception as error:  # pydub raises anything from CouldntDecodeError to IndexError
        reason = first_line(error).replace(str(source), "the file")
        raise AudioRejected(f"the {kind.upper()} file is damaged or not audio",
                            {"format": kind, "reason": reason}) from error


def _finish(audio: Any, target: Path, *, max_seconds: float,
            details: dict[str, Any]) -> Converted:
    if len(audio) < MIN_DURATION_MS:
        raise AudioRejected("the recording is empty", {"duration_ms": len(audio)})
    if audio.duration_seconds > max_seconds:
        raise AudioRejected("the recording is too long",
                            {"max_seconds": max_seconds,
                             "duration_seconds": round(audio.duration_seconds, 1)})
    peak = audio.max_dBFS
    if not math.isfinite(peak) or peak < SILENT_PEAK_DBFS:
        raise AudioRejected("the recording is silent",
                            {"peak_dbfs": round(peak, 1) if math.isfinite(peak) else None,
                             "threshold_dbfs": SILENT_PEAK_DBFS})
    try:
        converted = asterisk_audio(audio, trim=True)
    except Exception as error:  # audioop.error and the like on odd sample formats
        raise AudioRejected("the recording could not be converted",
                            {"reason": first_line(error)}) from error
    export_wav(converted, target)
    return Converted(path=target, duration_ms=len(converted), details=details)


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    # ffmpeg's own complaint is the last line of its output.
    return (lines[-1] if len(lines) > 1 else lines[0])[:300]
