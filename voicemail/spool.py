"""Asterisk's voicemail spool as the backend sees it: which recordings are finished, and
what their names say.

The dialplan (`[hotline-voicemail]`) records into `<spool>/<site>/<UTC time>-<linkedid>-
<caller digits>.wav` and, when the caller hangs up, announces the file with a
`HotlineVoicemail` UserEvent. A file nobody announced (the backend was down, the event was
lost) is taken once its size and time have not changed for a while: Record() writes every
frame it receives, silence included, so a recording in progress keeps changing.
"""

from __future__ import annotations

import re
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


class SettleWatch:
    """Finished recordings among the spool's files: unchanged for `settle_seconds`."""

    def __init__(self, *, settle_seconds: float) -> None:
        self._settle = settle_seconds
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
            if now - seen.since >= self._settle:
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
