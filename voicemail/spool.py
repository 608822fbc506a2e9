"""Asterisk's voicemail spool as the backend sees it: which recordings are finished, and
what their names say.

The dialplan (`[hotline-voicemail]`) records into `<spool>/<site>/<UTC time>-<linkedid>-
<caller digits>.wav` and, when the caller hangs up, announces the file with a
`HotlineVoicemail` UserEvent. A file nobody announced (the backend was down, the event was
lost) is taken once it is finished: Asterisk writes a WAV header's sizes only when it
closes the file, so a header whose sizes match the file, unchanged for `settle_seconds`,
is a finished recording. Size and time alone do not tell: a phone that suppresses silence
sends no audio, and Record() then writes nothing while it still records. A file whose
header is never completed (Asterisk died mid-recording) is taken once it has not changed
for `stale_seconds`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

#: 20261129T145300Z-1764412345.12-13800138000.wav
_NAME = re.compile(
    r"^(?P<at>\d{8}T\d{6}Z)-(?P<linkedid>[0-9.]+)-(?P<number>\+?[0-9]*)\.wav$")
AUDIO_SUFFIXES = (".wav",)


@dataclass(frozen=True)
class SpoolFile:
    path: Path  # as this process reaches it
    relative: str  # "<site>/<name>": the message's key, the same on every backend node
    site_code: str
    recorded_at: datetime | None  # None: a name the dialplan did not write
    linkedid: str | None
    caller_number: str | None


def spool_file(spool_dir: Path, path: Path) -> SpoolFile:
    """What a spool file's place and name say. A name in another format is still a message:
    its time and number are unknown, never a reason to skip it."""
    relative = PurePosixPath(path.relative_to(spool_dir).as_posix())
    site = relative.parts[0] if len(relative.parts) > 1 else ""
    match = _NAME.match(relative.name)
    if match is None:
        return SpoolFile(path=path, relative=str(relative), site_code=site, recorded_at=None,
                         linkedid=None, caller_number=None)
    recorded = datetime.strptime(match["at"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return SpoolFile(path=path, relative=str(relative), site_code=site, recorded_at=recorded,
                     linkedid=match["linkedid"], caller_number=match["number"] or None)


def announced_path(spool_dir: Path, asterisk_spool: str, announced: str) -> Path | None:
    """The file a HotlineVoicemail event names (a path on the Asterisk host) as this
    process reaches it; None for a path outside the spool (never trusted)."""
    root = PurePosixPath(asterisk_spool.rstrip("/") or "/")
    try:
        relative = PurePosixPath(announced).relative_to(root)
    except ValueError:
        return None
    if not relative.parts or ".." in relative.parts:
        return None
    return spool_dir.joinpath(*relative.parts)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # when this size and time were first seen (monotonic)


def wav_header_complete(path: Path, size: int) -> bool:
    """Whether a WAV file's RIFF size says what the file holds (Asterisk writes it on
    close; while recording it is 0)."""
    try:
        with path.open("rb") as reader:
            head = reader.read(12)
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    (riff_size,) = struct.unpack("<I", head[4:8])
    return riff_size > 0 and riff_size + 8 == size


class SettleWatch:
    """Finished recordings among the spool's files (see the module's docstring)."""

    def __init__(self, *, settle_seconds: float, stale_seconds: float = 600.0) -> None:
        self._settle = settle_seconds
        self._stale = stale_seconds
        self._seen: dict[Path, _Seen] = {}

    def finished(self, paths: Iterable[Path], now: float) -> list[Path]:
        ready: list[Path] = []
        present: set[Path] = set()
        for path in paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            present.add(path)
            seen = self._seen.get(path)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self._seen[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                continue
            unchanged = now - seen.since
            if unchanged >= self._stale or (
                    unchanged >= self._settle and (path.suffix.lower() != ".wav"
                                                   or wav_header_complete(path, stat.st_size))):
                ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)


def recordings(spool_dir: Path) -> Iterator[Path]:
    """Every recording under the spool (one folder per site), oldest name first."""
    if not spool_dir.is_dir():
        return
    for path in sorted(spool_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            yield path
