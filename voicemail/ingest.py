"""Spool → message rows, exactly once.

For each finished recording: copy it into the message store, insert its row (unique per
Asterisk node and spool path), and only then remove it from the spool. A restart between
any two steps repeats them harmlessly: the copy lands on the same path, the insert finds
the row, the removal finds no file. Two backend nodes of one Asterisk race on the insert
and one wins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.clock import Clock
from hotline.db.models import VoicemailMessage, call_id_for
from hotline.tasks import cancel_and_wait, woken_or_timeout
from voicemail.asterisk import EventSource
from voicemail.spool import (
    SettleWatch,
    SpoolFile,
    announced_path,
    recordings,
    spool_file,
    wav_header_complete,
)
from voicemail.store import MessageStore

log = structlog.get_logger(__name__)


class SpoolIngester:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 store: MessageStore, spool_dir: Path, node: str,
                 scan_seconds: float = 1.0, settle_seconds: float = 3.0,
                 stale_seconds: float = 600.0,
                 on_ingested: Callable[[int], None] | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._store = store
        self.spool_dir = spool_dir
        self._node = node
        self._scan_seconds = scan_seconds
        self._settle = SettleWatch(settle_seconds=settle_seconds, stale_seconds=stale_seconds)
        self._on_ingested = on_ingested
        self._announced: set[Path] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ingested = 0
        self.failures = 0
        self.last_error: str | None = None

    def subscribe(self, ami: EventSource, *, asterisk_spool: str) -> None:
        """The dialplan's HotlineVoicemail event (the caller hung up: the file is complete)."""

        async def on_user_event(message: Message) -> None:
            if str(message.get("UserEvent", "")) != "HotlineVoicemail":
                return
            path = announced_path(self.spool_dir, asterisk_spool, str(message.get("File", "")))
            if path is not None:
                self.announce(path)

        ami.subscribe("UserEvent", on_user_event)

    def announce(self, path: Path) -> None:
        """The dialplan says this recording is finished (the caller hung up)."""
        self._announced.add(path)
        self._wake.set()

    async def start(self) -> None:
        swept = await asyncio.to_thread(self._store.sweep_incoming)
        if swept:
            log.info("half-written message copies removed", count=swept)
        self._task = asyncio.create_task(self._run(), name="voicemail-spool")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await woken_or_timeout(self._wake, self._scan_seconds)
            await self.scan_once()

    async def scan_once(self) -> int:
        """Ingest every finished recording; a failing file is tried again next scan."""
        announced, self._announced = self._announced, set()
        paths = await asyncio.to_thread(lambda: list(recordings(self.spool_dir)))
        ready = set(self._settle.finished(paths, time.monotonic()))
        # Announced after the caller hung up, so Record() has closed it; a WAV whose header
        # is still open is left to the scans (it is not finished after all).
        ready |= {path for path in announced if path.is_file() and (
            path.suffix.lower() != ".wav" or wav_header_complete(path, path.stat().st_size))}
        count, error = 0, None
        for path in sorted(ready):
            try:
                await self.ingest(spool_file(self.spool_dir, path))
                count += 1
            except Exception as failure:  # the file stays in the spool: the next scan retries
                self.failures += 1
                error = repr(failure)
                log.exception("voicemail not ingested yet", file=str(path))
        self.last_error = error
        return count

    async def ingest(self, file: SpoolFile) -> int:
        """The message's id; the spool file is gone afterwards."""
        kept = await asyncio.to_thread(self._store.keep_original, file.path, file.relative)
        now = self._clock.now()
        # Asterisk names the file by its own (real) clock; decisions read ours.
        stamped = file.recorded_at or await asyncio.to_thread(_mtime, file.path)
        recorded = self._clock.from_real(stamped) if stamped is not None else now
        message_id = await self._existing(file.relative)
        new = message_id is None
        if message_id is None:
            row = VoicemailMessage(
                node=self._node, spool_path=file.relative, site_code=file.site_code or "default",
                call_id=call_id_for(self._node, file.linkedid) if file.linkedid else None,
                linkedid=file.linkedid, caller_number=file.caller_number, recorded_at=recorded,
                ingested_at=now, sha256=kept.sha256, size_bytes=kept.size,
                original_path=kept.relative)
            try:
                async with self._sessions() as session:
                    session.add(row)
                    await session.commit()
                    message_id = row.id
            except IntegrityError:  # another node took it first
                new = False
                message_id = await self._existing(file.relative)
                if message_id is None:
                    raise
        await asyncio.to_thread(file.path.unlink, missing_ok=True)
        self._settle.forget(file.path)
        if new:
            self.ingested += 1
            log.info("voicemail ingested", message=message_id, site=file.site_code,
                     bytes=kept.size)
            if self._on_ingested is not None:
                self._on_ingested(message_id)
        return message_id

    async def _existing(self, relative: str) -> int | None:
        async with self._sessions() as session:
            return await session.scalar(select(VoicemailMessage.id).where(
                VoicemailMessage.node == self._node, VoicemailMessage.spool_path == relative))


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
