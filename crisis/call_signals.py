"""The crisis route as a crisis signal: when the call journal has written a call's route
and it is the crisis route (the caller chose the crisis option, or a caller flagged
high-risk; `oncall` is the crisis route when nobody on duty can take the crisis queue),
an incident opens for that call.

Nothing here runs on the call path: the journal's writer task hands the route over after
its commit (`CallJournal.on_route`, which returns at once) and this object's own task
reads the call and signals. The FastAGI IVR and the classic AGI fallback (the dialplan's
HotlineRoute event, through the AMI call tracker) both end in the journal.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crisis.incidents import Incidents
from hotline.db.models import Call, CallEvent
from hotline.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

CRISIS_ROUTES = frozenset({"crisis", "oncall"})


class CrisisCalls:
    def __init__(self, *, incidents: Incidents, sessions: async_sessionmaker[AsyncSession],
                 default_site: str, remember: int = 10_000) -> None:
        self._incidents = incidents
        self._sessions = sessions
        self._default_site = default_site
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        # A call routed again (back from a self-help programme) signals once.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._task: asyncio.Task[None] | None = None
        self.signalled = 0

    def on_route(self, call_id: str, linkedid: str, route: str) -> None:
        """The journal's hook: never blocks."""
        if route not in CRISIS_ROUTES or call_id in self._seen:
            return
        self._seen[call_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._queue.put_nowait((call_id, linkedid, route))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crisis-calls")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            call_id, linkedid, route = await self._queue.get()
            try:
                await self.signal(call_id, linkedid, route)
            except Exception:  # one failed signal must not stop the next
                log.exception("crisis route not signalled", call_id=call_id)

    async def signal(self, call_id: str, linkedid: str, route: str) -> None:
        async with self._sessions() as session:
            call = await session.get(Call, call_id)
            reason = await session.scalar(
                select(CallEvent.data).where(CallEvent.call_id == call_id,
                                             CallEvent.kind == "route")
                .order_by(CallEvent.id.desc()).limit(1))
        reason = (reason or {}).get("reason") if isinstance(reason, dict) else None
        if reason == "flagged_high_risk":
            summary = "已标记为高危的来电者来电"
        elif reason == "keyword":  # the night attendant heard one (crisis/attendant.py)
            summary = "夜间值守听到危机关键词，来电已转入危机线路"
        else:
            summary = "来电者选择了危机选项"
        if route == "oncall":
            summary += "（危机队列无人值守，转值班电话）"
        await self._incidents.signal(
            source="crisis_option", site=(call.site_code if call else None) or self._default_site,
            summary=summary, linkedid=linkedid, call_id=call_id,
            caller_number=call.caller_number if call else None,
            caller_name=call.caller_name if call else None,
            call_started_at=call.started_at if call else None,
            details={"route": route, "reason": reason,
                     "queue": call.queue if call else None})
        self.signalled += 1
