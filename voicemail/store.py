"""The backend's own copies of messages: the original exactly as Asterisk recorded it, and a
compressed copy for the admin web. Paths are derived from the spool file's key, so taking
the same file again (a restart mid-ingest, two backend nodes) writes the same place."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class KeptOriginal:
    relative: str  # under the store
    sha256: str
    size: int


class MessageStore:
    def __init__(self, *, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        parts = PurePosixPath(relative).parts
        if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
            raise ValueError(f"not a path inside the message store: {relative!r}")
        return self.root.joinpath(*parts)

    def keep_original(self, source: Path, key: str) -> KeptOriginal:
        """Copy a spool file into the store (written aside, then renamed: a crash never
        leaves half a file under the final name). Blocking: run it in a thread."""
        relative = f"originals/{key}"
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as reader, tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=".incoming-", delete=False) as writer:
            try:
                while chunk := reader.read(1 << 16):
                    digest.update(chunk)
                    size += len(chunk)
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            except BaseException:
                os.unlink(writer.name)
                raise
        os.replace(writer.name, target)
        shutil.copystat(source, target)
        return KeptOriginal(relative=relative, sha256=digest.hexdigest(), size=size)

    def sweep_incoming(self) -> int:
        """Remove half-written copies a killed process left (their spool files are still
        there and will be copied again). Call it before ingesting starts."""
        removed = 0
        for leftover in self.root.glob("originals/**/.incoming-*"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def web_copy_path(self, key: str, suffix: str) -> tuple[str, Path]:
        relative = f"web/{PurePosixPath(key).with_suffix(suffix)}"
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        return relative, target
