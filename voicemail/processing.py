"""An ingested message → its audio checked and a web copy made, a transcript (or the reason
there is none), a keyword scan, and its callback task; an urgent one raises the crisis alert
at once, day or night.

Each step is saved as it is done, so a restart resumes where it stopped. A message is
claimed by one backend node while it is processed; a claim older than `claim_seconds` (a
node that died) is taken over. The callback task is unique per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.alerts.services import Alerts
from hotline.clock import Clock
from hotline.db.models import (
    CallbackTask,
    CrisisKeyword,
    MessageAudio,
    Site,
    Transcription,
    VoicemailMessage,
)
from hotline.rules.published import RoutingTable
from hotline.tasks import cancel_and_wait
from routing.callbacks import next_service_start, reply_deadline
from routing.hours import local_time, overrides_by_date
from routing.keywords import DEFAULT_KEYWORDS, Category, Keyword, KeywordList, scan
from voicemail.audio import prepare_message, read_message
from voicemail.store import MessageStore
from voicemail.transcription import Transcriber, Transcript, untranscribed

log = structlog.get_logger(__name__)

# Opens (or adds to) the message's crisis incident, which raises the one crisis alert:
# crisis/incidents.py `Incidents.signal`, called with keyword arguments.
CrisisSignal = Callable[..., Awaitable[object]]


@dataclass(frozen=True)
class Schedule:
    due_at: datetime
    deadline_at: datetime | None


class MessageProcessor:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 store: MessageStore, transcriber: Transcriber, routing: RoutingTable,
                 alerts: Alerts, node: str, claim_seconds: float = 900.0,
                 sweep_seconds: float = 30.0, concurrency: int = 2,
                 crisis_signal: CrisisSignal | None = None) -> None:
        self._sessions = sessions
        self._crisis_signal = crisis_signal
        self._clock = clock
        self._store = store
        self._transcriber = transcriber
        self._routing = routing
        self._alerts = alerts
        self._node = node
        self._claim = timedelta(seconds=claim_seconds)
        self._sweep_seconds = sweep_seconds
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Messages in hand at once: one can be encoded while others are transcribed, and an
        # urgent message is not stuck behind a backlog's one-at-a-time.
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._running: dict[int, asyncio.Task[None]] = {}
        self.processed = 0
        self.failures = 0
        self.last_error: str | None = None

    def enqueue(self, message_id: int) -> None:
        self._queue.put_nowait(message_id)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="voicemail-processing")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for task in list(self._running.values()):
            await cancel_and_wait(task)
        self._running.clear()

    async def _run(self) -> None:
        while True:
            # The backlog first (messages a stopped node left), then as they arrive; every
            # `sweep_seconds` the backlog again (a failed message is tried again).
            for message_id in await self.unprocessed():
                await self._spawn(message_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_seconds):
                    while True:
                        await self._spawn(await self._queue.get())

    async def _spawn(self, message_id: int) -> None:
        if message_id in self._running:
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._process_quietly(message_id),
                                   name=f"voicemail-message-{message_id}")
        self._running[message_id] = task

    async def _process_quietly(self, message_id: int) -> None:
        try:
            await self.process(message_id)
            self.last_error = None
        except Exception as error:  # the next sweep tries again
            self.failures += 1
            self.last_error = repr(error)
            log.exception("voicemail processing failed", message=message_id)
        finally:
            self._running.pop(message_id, None)
            self._slots.release()

    async def retranscribe(self) -> list[int]:
        """Messages that have audio but no transcript (no model then, or it failed): marked
        for transcription again, e.g. after a model was configured. Their ids."""
        async with self._sessions() as session:
            ids = list(await session.scalars(
                select(VoicemailMessage.id).where(
                    VoicemailMessage.transcription == Transcription.UNTRANSCRIBED,
                    VoicemailMessage.audio == MessageAudio.OK)
                .order_by(VoicemailMessage.id)))
            if ids:
                await session.execute(
                    update(VoicemailMessage).where(VoicemailMessage.id.in_(ids))
                    .values(transcription=Transcription.PENDING, processed_at=None))
                await session.commit()
        return ids

    async def unprocessed(self) -> list[int]:
        async with self._sessions() as session:
            return list(await session.scalars(
                select(VoicemailMessage.id).where(VoicemailMessage.processed_at.is_(None))
                .order_by(VoicemailMessage.id)))

    async def process(self, message_id: int) -> bool:
        """True when this call finished the message (False: done already, or another node
        holds it)."""
        if not await self._claim_message(message_id):
            return False
        async with self._sessions() as session:
            message = await session.get_one(VoicemailMessage, message_id)
            if message.audio == MessageAudio.PENDING:
                await self._check_audio(message)
                await session.commit()
            if message.transcription == Transcription.PENDING:
                self._transcribed(message, await self._transcribe(message))
                await session.commit()
            # The callback and the alert first: they need no web copy.
            message.keyword_hits, message.urgent = await self._scan(session, message)
            await self._create_task(session, message)
            await session.commit()
            if message.urgent:
                await self._raise_crisis_alert(_summary(message))
            if message.web_path is None and message.duration_seconds:
                await self._web_copy(message)
            message.processed_at = self._clock.now()
            message.processing_node = message.processing_since = None
            await session.commit()
            view = _summary(message)
        self.processed += 1
        log.info("voicemail processed", **view)
        return True

    async def _claim_message(self, message_id: int) -> bool:
        now = self._clock.now()
        async with self._sessions() as session:
            result = await session.execute(
                update(VoicemailMessage)
                .where(VoicemailMessage.id == message_id,
                       VoicemailMessage.processed_at.is_(None),
                       or_(VoicemailMessage.processing_since.is_(None),
                           VoicemailMessage.processing_node == self._node,
                           VoicemailMessage.processing_since < now - self._claim))
                .values(processing_node=self._node, processing_since=now))
            await session.commit()
            return bool(getattr(result, "rowcount", 0))

    async def _check_audio(self, message: VoicemailMessage) -> None:
        recording = await asyncio.to_thread(read_message,
                                            self._store.path(message.original_path))
        message.audio = MessageAudio(recording.status)
        message.audio_reason = recording.reason
        message.duration_seconds = round(recording.duration_seconds, 3)

    async def _web_copy(self, message: VoicemailMessage) -> None:
        """The loudness-normalised compressed copy the admin web plays (the original is
        served when there is none)."""
        original = self._store.path(message.original_path)
        web_relative, web_path = self._store.web_copy_path(message.spool_path, ".ogg")
        prepared = await asyncio.to_thread(prepare_message, original, web_path)
        message.web_path = web_relative if prepared.web_copy is not None else None
        if prepared.copy_error:
            log.warning("no web copy of a message", message=message.id,
                        error=prepared.copy_error)

    async def _transcribe(self, message: VoicemailMessage) -> Transcript:
        if message.audio in (MessageAudio.EMPTY, MessageAudio.BROKEN) \
                and not message.duration_seconds:
            return untranscribed(f"no audio to transcribe ({message.audio_reason})")
        if message.audio == MessageAudio.SILENT:
            # Silence may be a caller who could not speak: a person listens.
            return untranscribed("the recording is silent")
        return await self._transcriber.transcribe(self._store.path(message.original_path))

    @staticmethod
    def _transcribed(message: VoicemailMessage, transcript: Transcript) -> None:
        message.transcription = Transcription(transcript.status)
        message.transcript = transcript.text if transcript.status == "transcribed" else None
        message.transcription_reason = transcript.reason
        message.transcription_model = transcript.model

    async def _scan(self, session: AsyncSession,
                    message: VoicemailMessage) -> tuple[list[dict[str, Any]], bool]:
        if not message.transcript:
            return [], False
        result = scan(await keyword_list(session), message.transcript)
        hits = [{"term": hit.term, "canonical": hit.canonical, "category": str(hit.category),
                 "snippet": hit.snippet} for hit in result.hits]
        return hits, result.urgent

    async def _create_task(self, session: AsyncSession, message: VoicemailMessage) -> None:
        existing = await session.scalar(select(CallbackTask).where(
            CallbackTask.message_id == message.id))
        now = self._clock.now()
        if existing is not None:
            # Transcribed again (a model configured since): an urgent one does not wait.
            existing.untranscribed = message.transcription != Transcription.TRANSCRIBED
            if message.urgent and not existing.urgent and existing.state == "pending":
                existing.urgent, existing.due_at = True, now
                existing.next_attempt_at = now if existing.number else None
            return
        schedule = await self.schedule(session, message.site_code, message.recorded_at)
        # An urgent message does not wait for the morning.
        due = now if message.urgent else schedule.due_at
        task = CallbackTask(
            site_code=message.site_code, message_id=message.id, call_id=message.call_id,
            source="voicemail", number=message.caller_number, urgent=message.urgent,
            untranscribed=message.transcription != Transcription.TRANSCRIBED,
            created_at=now, requested_at=message.recorded_at, due_at=due,
            deadline_at=schedule.deadline_at,
            next_attempt_at=due if message.caller_number else None)
        try:
            async with session.begin_nested():
                session.add(task)
        except IntegrityError:  # another node created it meanwhile
            pass

    async def schedule(self, session: AsyncSession, site_code: str,
                       requested_at: datetime) -> Schedule:
        """When the callback is due (the next service window) and the reply deadline."""
        site = self._routing.site(site_code)
        rules = site.rules
        local = local_time(requested_at, rules.timezone)
        overrides = overrides_by_date(rules.hours.overrides)
        calendar = self._routing.state.calendar
        reply_hours = await session.scalar(select(Site.callback_reply_hours).where(
            Site.code == site_code))
        due = next_service_start(rules.hours.site, calendar, local, overrides)
        deadline = reply_deadline(rules.hours.site, calendar, local, overrides,
                                  within_hours=reply_hours)
        # A site with no opening in sight still gets its callback: due now, for a person.
        return Schedule(due_at=due or requested_at, deadline_at=deadline)

    async def _raise_crisis_alert(self, view: dict[str, Any]) -> None:
        terms = "、".join(sorted({hit["canonical"] for hit in view["hits"]}))
        if self._crisis_signal is not None:
            # The incident raises the alert: one alert per crisis, not one here as well.
            await self._crisis_signal(
                source="voicemail_keyword", site=view["site"],
                summary=f"留言含危机关键词（{terms}）", message_id=view["message"],
                call_id=view["call_id"], caller_number=view["number"],
                details={"hits": view["hits"]})
            return
        await self._alerts.raise_alert(
            key=f"voicemail:{view['message']}", kind="crisis_keyword", site=view["site"],
            severity="critical",
            summary=f"留言含危机关键词（{terms}），来电号码 {view['number'] or '未知'}",
            details={"message_id": view["message"], "caller_number": view["number"],
                     "hits": view["hits"]})


async def keyword_list(session: AsyncSession) -> KeywordList:
    """The administrators' list; the built-in defaults until they have entered one."""
    rows = (await session.scalars(select(CrisisKeyword).where(CrisisKeyword.enabled))).all()
    if not rows:
        return DEFAULT_KEYWORDS
    return KeywordList(tuple(Keyword(term=row.term, category=Category(row.category),
                                     synonyms=tuple(row.synonyms),
                                     exclusions=tuple(row.exclusions)) for row in rows))


def _summary(message: VoicemailMessage) -> dict[str, Any]:
    return {"message": message.id, "site": message.site_code, "number": message.caller_number,
            "call_id": message.call_id,
            "audio": str(message.audio), "transcription": str(message.transcription),
            "urgent": message.urgent, "hits": list(message.keyword_hits)}
