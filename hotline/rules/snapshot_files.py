"""Writes the files the classic AGI fallback reads: rules snapshots and the clock setting.

The format and the directory layout are in routing/snapshot.py. Every file is replaced
atomically (a temp file in the same directory, fsync, rename, fsync of the directory), so
a classic AGI script starting at any moment reads a whole old file or a whole new one.
Files are 0640: the directory should belong to (or be setgid to) a group Asterisk is in
when Asterisk runs as its own user; in the sandbox Asterisk runs as root.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hotline.config import Settings
from routing.snapshot import (
    CLOCK_FILE,
    DEFAULT_SITE_FILE,
    ClockSetting,
    RulesSnapshot,
    snapshot_file_name,
)

FILE_MODE = 0o640
DIR_MODE = 0o750


def snapshot_directory(settings: Settings) -> Path:
    """`rules.snapshot_dir`, or the sandbox's: /var/lib/hotline12355/rules in the chroot."""
    if settings.rules.snapshot_dir is not None:
        return Path(settings.rules.snapshot_dir).expanduser()
    from hotline.asterisk.sandbox import CLASSIC_SNAPSHOT_DIR

    return Path(settings.asterisk.chroot_dir).expanduser() / CLASSIC_SNAPSHOT_DIR.lstrip("/")


def write_atomically(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a part."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _point_default(directory: Path, target_name: str) -> None:
    """`_default.json` → `target_name`, a relative link (it resolves inside the chroot too),
    swapped in with one rename."""
    link = directory / DEFAULT_SITE_FILE
    with contextlib.suppress(OSError):
        if link.is_symlink() and os.readlink(link) == target_name:
            return
    temp = directory / f".{DEFAULT_SITE_FILE}.{os.getpid()}.tmp"
    temp.unlink(missing_ok=True)
    os.symlink(target_name, temp)
    try:
        os.replace(temp, link)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def write_snapshot(directory: Path, snapshot: RulesSnapshot, *, default: bool = False) -> Path:
    """Write `<site>.json` unless it already holds the same snapshot (apart from
    `written_at`): cheap to call after every reload of the rules, so that flags and
    calendar changes reach the fallback too. With `default`, also point `_default.json`
    at it."""
    path = directory / snapshot_file_name(snapshot.site_code)
    if not _same_snapshot(path, snapshot):
        write_atomically(path, snapshot.model_dump_json(indent=1).encode("utf-8"))
    if default:
        _point_default(directory, path.name)
    return path


def _same_snapshot(path: Path, snapshot: RulesSnapshot) -> bool:
    try:
        current = RulesSnapshot.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return False
    return current.model_copy(update={"written_at": snapshot.written_at}) == snapshot


def remove_snapshot(directory: Path, site_code: str) -> None:
    """A site that no longer exists: its calls fall back to the default site's snapshot."""
    (directory / snapshot_file_name(site_code)).unlink(missing_ok=True)


def clock_setting(settings: Settings) -> ClockSetting:
    clock = settings.clock
    return ClockSetting(fixed=clock.fixed, offset_seconds=clock.offset_seconds,
                        timezone=clock.timezone)


def write_clock_file(settings: Settings) -> Path:
    """Write `clock.json` from the backend's clock setting; call it when the backend starts,
    so the classic fallback decides hours and holidays at the backend's "now"."""
    path = snapshot_directory(settings) / CLOCK_FILE
    write_atomically(path, clock_setting(settings).model_dump_json(indent=1).encode("utf-8"))
    return path


def write_fallback_files(settings: Settings, snapshots: list[tuple[RulesSnapshot, bool]]) -> None:
    """The clock and every site's snapshot (`default` marks the default site's)."""
    directory = snapshot_directory(settings)
    write_clock_file(settings)
    for snapshot, default in snapshots:
        write_snapshot(directory, snapshot, default=default)
