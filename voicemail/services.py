"""What people do with messages and callbacks: read the messages, listen (audited), work
the callback list (urgent first, then messages no keyword scan has cleared, then oldest
first), assign a callback, record an outcome by hand, and edit the crisis keyword list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import (
    CallbackAttempt,
    CallbackState,
    CallbackTask,
    Counsellor,
    CrisisKeyword,
    VoicemailMessage,
)
from routing.callbacks import FINAL_OUTCOMES, Outcome, WorklistTask, worklist_key
from routing.keywords import Keyword, KeywordList, KeywordListError
from voicemail.dialer import attempt_json
from voicemail.processing import keyword_list
from voicemail.store import MessageStore

log = structlog.get_logger(__name__)


class NotFound(Exception):
    pass


class Invalid(ValueError):
    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class AudioFile:
    path: Path
    content_type: str
    filename: str


class Voicemail:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 store: MessageStore) -> None:
        self._sessions = sessions
        self._clock = clock
        self._store = store

    # -- messages ------------------------------------------------------------------------------

    async def messages(self, *, site: str | None = None, urgent: bool | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            query = select(VoicemailMessage).order_by(VoicemailMessage.recorded_at.desc())
            if site:
                query = query.where(VoicemailMessage.site_code == site)
            if urgent is not None:
                query = query.where(VoicemailMessage.urgent == urgent)
            rows = list(await session.scalars(query.limit(limit)))
            tasks = await self._tasks_of(session, [row.id for row in rows])
        return [message_json(row, tasks.get(row.id)) for row in rows]

    async def message(self, message_id: int) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await session.get(VoicemailMessage, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            tasks = await self._tasks_of(session, [message_id])
            answer = message_json(row, tasks.get(message_id))
            task = tasks.get(message_id)
            if task is not None:
                attempts = await session.scalars(select(CallbackAttempt).where(
                    CallbackAttempt.task_id == task.id).order_by(CallbackAttempt.number))
                answer["callback"]["attempts"] = [attempt_json(a) for a in attempts]
            return answer

    async def audio(self, actor: Actor, message_id: int, *, original: bool) -> AudioFile:
        """The file to send; every listen is in the audit log (a young person's voice)."""
        async with self._sessions() as session:
            row = await session.get(VoicemailMessage, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            relative = row.original_path if original or not row.web_path else row.web_path
            path = self._store.path(relative)
            if not path.is_file() and relative != row.original_path:
                # The web copy is gone (cleaned up, a node without it): the original will do.
                relative = row.original_path
                path = self._store.path(relative)
            if not path.is_file():
                raise NotFound(f"the audio of message {message_id} is missing")
            record_audit(session, actor=actor, at=self._clock.now(),
                         action="voicemail.audio", target=f"voicemail:{message_id}",
                         after={"file": "original" if relative == row.original_path else "web"})
            await session.commit()
        content_type = {".ogg": "audio/ogg", ".mp3": "audio/mpeg"}.get(path.suffix, "audio/wav")
        return AudioFile(path=path, content_type=content_type,
                         filename=f"message-{message_id}{path.suffix}")

    @staticmethod
    async def _tasks_of(session: AsyncSession, ids: list[int]) -> dict[int, CallbackTask]:
        if not ids:
            return {}
        rows = await session.scalars(select(CallbackTask).where(CallbackTask.message_id.in_(ids)))
        return {row.message_id: row for row in rows if row.message_id is not None}

    # -- the callback worklist -----------------------------------------------------------------

    async def worklist(self, *, site: str | None = None, include_closed: bool = False,
                       limit: int = 200) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            query = select(CallbackTask)
            if not include_closed:
                query = query.where(CallbackTask.state.in_(
                    (CallbackState.PENDING, CallbackState.DIALING)))
            if site:
                query = query.where(CallbackTask.site_code == site)
            rows = list(await session.scalars(query))
        rows.sort(key=lambda row: worklist_key(WorklistTask(
            message_id=row.message_id or 0, left_at=row.requested_at, urgent=row.urgent,
            scanned=not row.untranscribed)))
        return [task_json(row) for row in rows[:limit]]

    async def assign(self, actor: Actor, task_id: int, counsellor_id: int | None) -> dict[str, Any]:
        async with self._sessions() as session:
            task = await self._task(session, task_id)
            if counsellor_id is not None and await session.get(Counsellor, counsellor_id) is None:
                raise Invalid(f"no counsellor {counsellor_id}")
            before = task_json(task)
            task.assigned_counsellor_id = counsellor_id
            record_audit(session, actor=actor, at=self._clock.now(), action="callback.assign",
                         target=f"callback:{task_id}", before=before, after=task_json(task))
            await session.commit()
            return task_json(task)

    async def record_outcome(self, actor: Actor, task_id: int, outcome: str,
                             note: str = "") -> dict[str, Any]:
        """A callback made or closed by hand (a counsellor called from a desk phone)."""
        try:
            result = Outcome(outcome)
        except ValueError:
            raise Invalid(f"unknown outcome {outcome!r}: one of "
                          f"{', '.join(o.value for o in Outcome)}") from None
        now = self._clock.now()
        async with self._sessions() as session:
            task = await self._task(session, task_id)
            before = task_json(task)
            task.outcome = result.value
            task.note = "\n".join(filter(None, [task.note, note.strip()]))
            if result == Outcome.REACHED:
                task.state, task.closed_at, task.next_attempt_at = CallbackState.DONE, now, None
            elif result in FINAL_OUTCOMES:
                task.state, task.closed_at, task.next_attempt_at = CallbackState.CLOSED, now, None
            record_audit(session, actor=actor, at=now, action="callback.outcome",
                         target=f"callback:{task_id}", before=before, after=task_json(task))
            await session.commit()
            return task_json(task)

    @staticmethod
    async def _task(session: AsyncSession, task_id: int) -> CallbackTask:
        task = await session.get(CallbackTask, task_id)
        if task is None:
            raise NotFound(f"no callback task {task_id}")
        return task

    # -- crisis keywords -----------------------------------------------------------------------

    async def keywords(self) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            return [keyword_json(entry) for entry in (await keyword_list(session)).entries]

    async def replace_keywords(self, actor: Actor,
                               entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            wanted = KeywordList(tuple(Keyword(
                term=e["term"], category=e["category"], synonyms=tuple(e.get("synonyms", ())),
                exclusions=tuple(e.get("exclusions", ()))) for e in entries))
        except KeywordListError as error:
            raise Invalid("the keyword list is not valid",
                          [p.as_dict() for p in error.problems]) from None
        except (KeyError, ValueError) as error:
            raise Invalid(f"the keyword list is not valid: {error}") from None
        async with self._sessions() as session:
            before = [keyword_json(e) for e in (await keyword_list(session)).entries]
            await session.execute(delete(CrisisKeyword))
            session.add_all(CrisisKeyword(term=e.term, category=str(e.category),
                                          synonyms=list(e.synonyms),
                                          exclusions=list(e.exclusions)) for e in wanted.entries)
            after = [keyword_json(e) for e in wanted.entries]
            record_audit(session, actor=actor, at=self._clock.now(), action="keywords.replace",
                         target="crisis_keywords", before={"entries": before},
                         after={"entries": after})
            await session.commit()
        log.info("crisis keywords replaced", entries=len(after), by=actor.username)
        return after


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(row: VoicemailMessage, task: CallbackTask | None) -> dict[str, Any]:
    return {
        "id": row.id, "site": row.site_code, "caller_number": row.caller_number,
        "call_id": row.call_id, "spool_path": row.spool_path, "recorded_at": _iso(row.recorded_at),
        "ingested_at": _iso(row.ingested_at), "duration_seconds": row.duration_seconds,
        "audio": str(row.audio), "audio_reason": row.audio_reason,
        "transcription": str(row.transcription), "transcript": row.transcript,
        "transcription_reason": row.transcription_reason,
        "transcription_model": row.transcription_model, "urgent": row.urgent,
        "keyword_hits": row.keyword_hits, "processed_at": _iso(row.processed_at),
        "callback": task_json(task) if task is not None else None,
    }


def task_json(row: CallbackTask) -> dict[str, Any]:
    return {
        "id": row.id, "site": row.site_code, "message_id": row.message_id,
        "source": row.source, "queue": row.queue, "number": row.number, "urgent": row.urgent,
        "untranscribed": row.untranscribed, "requested_at": _iso(row.requested_at),
        "due_at": _iso(row.due_at), "deadline_at": _iso(row.deadline_at),
        "next_attempt_at": _iso(row.next_attempt_at), "state": str(row.state),
        "outcome": row.outcome, "attempts_made": row.attempts_made,
        "assigned_counsellor_id": row.assigned_counsellor_id, "note": row.note,
        "closed_at": _iso(row.closed_at),
    }


def keyword_json(entry: Keyword) -> dict[str, Any]:
    return {"term": entry.term, "category": str(entry.category),
            "synonyms": list(entry.synonyms), "exclusions": list(entry.exclusions)}
