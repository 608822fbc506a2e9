"""A voicemail message's audio: what Asterisk's Record() left in the spool, checked, measured
and copied for the admin web.

The original (8 kHz mono 16-bit WAV) is never modified: it is the message. Beside it goes a
loudness-normalised Opus copy that browsers play and that is a tenth of the size. A file
that is empty, silent or broken is reported as such in the result — never as an exception —
so the caller can record it and a person can look; a WAV cut off mid-recording still gives
the audio that is there.

Everything here blocks (file reads, pydub, ffmpeg): run it in a worker
(``asyncio.to_thread`` or a process pool), never on the event loop.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hotline.asterisk.prompts import audio_segment_class
from hotline.prompts.audio import MIN_DURATION_MS, SILENT_PEAK_DBFS, first_line, sniff

Status = Literal["ok", "empty", "silent", "broken"]

#: Loudness of the web copy. -16 LUFS is the usual target for speech listened to on
#: headphones and laptop speakers; ffmpeg's loudnorm gets there in one pass, and its
#: true-peak limiter keeps a shouted message from clipping.
TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.5

#: WAV format tags whose samples we read ourselves; anything else goes through ffmpeg.
_PCM = 1
_EXTENSIBLE = 0xFFFE
#: Data sizes a streaming writer leaves in the header until it closes the file.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class WebEncoding:
    """How the web copy is encoded (ffmpeg's format and codec names)."""

    format: str
    codec: str
    suffix: str
    bitrate: str
    #: Sample rates the encoder takes; the copy keeps the original's rate when it is one.
    sample_rates: tuple[int, ...]
    parameters: tuple[str, ...] = ()


#: Opus in Ogg: made for speech, 24 kbit/s is plenty for phone audio; plays in Chrome,
#: Firefox, Edge and current Safari.
OPUS = WebEncoding(format="ogg", codec="libopus", suffix=".ogg", bitrate="24k",
                   sample_rates=(8000, 12000, 16000, 24000, 48000),
                   parameters=("-application", "voip"))
#: MP3, for a browser without Opus.
MP3 = WebEncoding(format="mp3", codec="libmp3lame", suffix=".mp3", bitrate="32k",
                  sample_rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000))


@dataclass(frozen=True)
class Recording:
    """A message file read into memory: its status, why, and the audio (a pydub
    AudioSegment) when any could be read — also from a broken file cut off mid-way."""

    status: Status
    reason: str
    audio: Any | None

    @property
    def duration_seconds(self) -> float:
        return float(self.audio.duration_seconds) if self.audio is not None else 0.0


@dataclass(frozen=True)
class MessageAudio:
    """What `prepare_message` found and made. `reason` says why the status is not ``ok``;
    `copy_error` says why there is no web copy although there was audio."""

    status: Status
    reason: str
    duration_seconds: float
    #: Loudest sample and RMS level of the original, in dBFS (None: no audio, or silence).
    peak_dbfs: float | None
    level_dbfs: float | None
    web_copy: Path | None
    copy_error: str | None = None


class _Unreadable(Exception):
    """The file cannot be read as a WAV at all; the message says why."""


@dataclass(frozen=True)
class _Layout:
    format_tag: int
    channels: int
    sample_rate: int
    sample_width: int
    data_offset: int
    declared: int | None  # bytes of audio the header announces (None: not finalised)
    available: int  # bytes of audio actually in the file


def read_message(path: Path) -> Recording:
    """Read a recorded message; never raises for anything wrong with the file."""
    try:
        size = path.stat().st_size
        if size == 0:
            return Recording("empty", "the file is empty (0 bytes)", None)
        with path.open("rb") as handle:
            head = handle.read(16)
        if sniff(head) != "wav":
            if len(head) >= 4 and head[:4] in (b"RIFF", b"RIFX"):
                raise _Unreadable(f"the WAV header is cut off ({size} bytes)")
            raise _Unreadable("not a WAV file (no RIFF/WAVE header)")
        layout = _scan(path, size)
    except _Unreadable as problem:
        return Recording("broken", str(problem), None)
    except OSError as error:
        return Recording("broken", f"the file could not be read ({error.strerror or error})",
                         None)
    if layout.available == 0:
        if layout.declared:
            return Recording("broken", "the file is cut off right after its header", None)
        return Recording("empty", "only a header, no audio after it", None)
    try:
        audio = _decode(path, layout)
    except Exception as error:  # pydub raises anything from CouldntDecodeError to IndexError
        reason = first_line(error).replace(str(path), "the file")
        return Recording("broken", f"the audio could not be decoded: {reason}", None)
    return _classify(audio, layout)


def prepare_message(original: Path, web_copy: Path, *, encoding: WebEncoding = OPUS,
                    target_lufs: float = TARGET_LUFS) -> MessageAudio:
    """Check `original` and write a loudness-normalised compressed copy to `web_copy`
    (written atomically; the original is only read). There is a copy whenever there is
    audio, also for a silent or cut-off message, so a person can always listen."""
    recording = read_message(original)
    audio = recording.audio
    if audio is None:
        return MessageAudio(status=recording.status, reason=recording.reason,
                            duration_seconds=0.0, peak_dbfs=None, level_dbfs=None,
                            web_copy=None)
    copy_error = None
    # Silence is not normalised: loudnorm would raise the hiss by 40 dB.
    normalise = recording.status != "silent"
    try:
        _export(audio, web_copy, encoding,
                loudnorm=f"loudnorm=I={target_lufs}:TP={TRUE_PEAK_DBTP}" if normalise else None)
    except Exception as error:  # ffmpeg missing or failing: the message still counts
        copy_error = first_line(error)
    return MessageAudio(status=recording.status, reason=recording.reason,
                        duration_seconds=round(recording.duration_seconds, 3),
                        peak_dbfs=_finite(audio.max_dBFS), level_dbfs=_finite(audio.dBFS),
                        web_copy=None if copy_error else web_copy, copy_error=copy_error)


def _scan(path: Path, size: int) -> _Layout:
    """Find the format and data chunks, trusting the file's size over the header's."""
    fmt: bytes | None = None
    with path.open("rb") as handle:
        handle.seek(12)
        while True:
            header = handle.read(8)
            if len(header) < 8:
                if fmt is None:
                    raise _Unreadable(f"the WAV header is cut off ({size} bytes)")
                # Record() always writes a data chunk, if only an empty one.
                raise _Unreadable("the WAV header is damaged (no audio chunk)")
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                if fmt is None:
                    raise _Unreadable("the WAV file has no format chunk before its audio")
                offset = handle.tell()
                declared = None if chunk_size in _UNKNOWN_SIZES else chunk_size
                return _layout(fmt, data_offset=offset, declared=declared,
                               available=min(size - offset, declared or size))
            if chunk_id == b"fmt ":
                fmt = handle.read(min(chunk_size, 40))
                if len(fmt) < 16:
                    raise _Unreadable(f"the WAV header is cut off ({size} bytes)")
                handle.seek(-len(fmt), 1)
            handle.seek(chunk_size + (chunk_size & 1), 1)


def _layout(fmt: bytes, *, data_offset: int, declared: int | None, available: int) -> _Layout:
    tag = int.from_bytes(fmt[0:2], "little")
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with it
    channels = int.from_bytes(fmt[2:4], "little")
    rate = int.from_bytes(fmt[4:8], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if not channels or not rate or (tag == _PCM and (bits % 8 or not 8 <= bits <= 32)):
        raise _Unreadable(f"the WAV format chunk is invalid ({channels} channels, {rate} Hz, "
                          f"{bits} bits)")
    return _Layout(format_tag=tag, channels=channels, sample_rate=rate,
                   sample_width=bits // 8, data_offset=data_offset, declared=declared,
                   available=available)


def _decode(path: Path, layout: _Layout) -> Any:
    segment = audio_segment_class()
    if layout.format_tag != _PCM:
        # GSM, µ-law, ADPCM… (Asterisk's wav49 among them): ffmpeg decodes what is there.
        return segment.from_file(str(path), format="wav")
    frame = layout.sample_width * layout.channels
    with path.open("rb") as handle:
        handle.seek(layout.data_offset)
        data = handle.read(layout.available - layout.available % frame)
    # Re-wrapped with a correct header, so pydub reads exactly the samples that exist.
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(layout.channels)
        out.setsampwidth(layout.sample_width)
        out.setframerate(layout.sample_rate)
        out.writeframes(data)
    buffer.seek(0)
    return segment.from_wav(buffer)


def _classify(audio: Any, layout: _Layout) -> Recording:
    seconds = audio.duration_seconds
    if layout.declared is None:
        # Asterisk fills in the sizes when it closes the file.
        return Recording("broken", "the WAV header was never completed (still being recorded, "
                         f"or the recording was interrupted); {seconds:.1f} s read to the end "
                         "of the file", audio)
    if layout.available < layout.declared:
        announced = layout.declared / (layout.sample_rate * layout.channels
                                       * max(1, layout.sample_width))
        return Recording("broken", f"the file is cut off: {seconds:.1f} s of the "
                         f"{announced:.1f} s its header announces", audio)
    if len(audio) < MIN_DURATION_MS:
        return Recording("empty", f"shorter than {MIN_DURATION_MS} ms", audio)
    peak = audio.max_dBFS
    if not math.isfinite(peak) or peak < SILENT_PEAK_DBFS:
        shown = f"{peak:.0f} dBFS" if math.isfinite(peak) else "no signal at all"
        return Recording("silent", f"silent (peak {shown}, threshold {SILENT_PEAK_DBFS:.0f} "
                         "dBFS)", audio)
    return Recording("ok", "", audio)


def _export(audio: Any, target: Path, encoding: WebEncoding, *, loudnorm: str | None) -> None:
    rate = audio.frame_rate if audio.frame_rate in encoding.sample_rates else max(
        encoding.sample_rates)
    # loudnorm works at 192 kHz inside; -ar brings the copy back to the original's rate.
    parameters = [*encoding.parameters, "-ar", str(rate), "-ac", "1"]
    if loudnorm is not None:
        parameters[:0] = ["-af", loudnorm]
    target.parent.mkdir(parents=True, exist_ok=True)
    # A reader (the web) never sees half a file.
    partial = target.with_name(f".{target.name}.partial")
    try:
        audio.export(str(partial), format=encoding.format, codec=encoding.codec,
                     bitrate=encoding.bitrate, parameters=parameters).close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _finite(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None
