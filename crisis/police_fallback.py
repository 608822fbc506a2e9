"""Police calls the dialplan made on its own, with the backend unreachable
([hotline-police-fallback] in the dialplan): 110 joined the caller and the counsellor in
their own bridge, and the call was recorded under a name that says whose call it was:

    fallback-police-<linkedid>-<counsellor's endpoint>-<caller's digits>.wav

Nothing else of it reached the backend. This watcher reads the recording folder (as
Asterisk's voicemail spool is read, voicemail/spool.py) every few seconds; each such
recording without an incident becomes one: the police request (via `dialplan_fallback`,
by the counsellor's endpoint), its packet stored and sent, the duty officer alerted, all as
if the backend had seen the key pressed, and a timeline line saying it was recorded
afterwards. The incident's room name is the linkedid's, so a recording is adopted once.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crisis.police import PoliceRequest, room_for
from hotline.clock import Clock
from hotline.db.models import Incident
from hotline.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

_NAME = re.compile(r"fallback-police-(?P<linkedid>[0-9]{1,20}(?:\.[0-9]{1,10})?)"
                   r"-(?P<endpoint>[A-Za-z0-9_]{0,80})-(?P<digits>[0-9]{0,32})\.wav")


@dataclass(frozen=True)
class FallbackRecording:
    linkedid: str
    endpoint: str
    caller_number: str
    file_name: str


def parse_recording_name(name: str) -> FallbackRecording | None:
    """What a fallback recording's file name says; None for any other file."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return FallbackRecording(linkedid=match["linkedid"], endpoint=match["endpoint"],
                             caller_number=match["digits"], file_name=name)


class PoliceRequests(Protocol):
    """crisis.police_records.PoliceRecords: the incident, packet and alert of a request."""

    async def police_requested(self, request: PoliceRequest) -> int: ...


class IncidentTimeline(Protocol):
    async def add_event(self, incident_id: int, *, kind: str, summary: str,
                        details: dict[str, Any] | None = None) -> object: ...


class FallbackPoliceCalls:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 records: PoliceRequests, timeline: IncidentTimeline, folder: Path,
                 asterisk_folder: str, interval_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._clock = clock
        self._records = records
        self._timeline = timeline
        self._folder = folder  # as this process reaches it
        self._asterisk_folder = asterisk_folder.rstrip("/")  # as Asterisk wrote it
        self._interval = interval_seconds
        self._adopted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="police-fallback-watch")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.scan_once()
            except (SQLAlchemyError, OSError) as error:
                log.warning("fallback police recordings not checked", error=repr(error))
            except Exception:  # one bad pass must not end the watch: the next one retries
                log.exception("fallback police recordings scan failed")
            await asyncio.sleep(self._interval)

    async def scan_once(self) -> list[int]:
        """Adopt every fallback recording that has no incident yet; the new incidents' ids."""
        try:
            # Off the event loop: the folder keeps every police recording ever made.
            names = await asyncio.to_thread(self._candidate_names)
        except FileNotFoundError:
            return []
        opened: list[int] = []
        for name in names:
            if name in self._adopted:
                continue
            recording = parse_recording_name(name)
            if recording is None:
                continue
            incident_id = await self._adopt(recording)
            self._adopted.add(name)
            if incident_id is not None:
                opened.append(incident_id)
        return opened

    def _candidate_names(self) -> list[str]:
        return sorted(entry.name for entry in self._folder.iterdir()
                      if entry.name.startswith("fallback-police-"))

    async def _adopt(self, recording: FallbackRecording) -> int | None:
        room = room_for(recording.linkedid)
        async with self._sessions() as session:
            known = await session.scalar(select(Incident.id).where(Incident.conference == room)
                                         .limit(1))
        if known is not None:
            return None
        counsellor = recording.endpoint or "未知咨询员"
        request = PoliceRequest(
            linkedid=recording.linkedid, room=room, site=None, requested_by=counsellor,
            requested_at=self._clock.now(), reason="", via="dialplan_fallback",
            caller_channel="", counsellor_channel="", caller_number=recording.caller_number,
            caller_name="",
            recording_path=f"{self._asterisk_folder}/{recording.file_name}")
        incident_id = await self._records.police_requested(request)
        await self._timeline.add_event(
            incident_id, kind="police.fallback",
            summary="后台不可用时，拨号方案直接将110接入通话（三方通话已录音），事后补录",
            details={"recording": request.recording_path, "endpoint": recording.endpoint})
        log.warning("POLICE BRIDGE by the dialplan alone, recorded afterwards",
                    linkedid=recording.linkedid, counsellor=counsellor,
                    caller=recording.caller_number, incident=incident_id)
        return incident_id
