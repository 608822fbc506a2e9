"""A caller waiting in a consultation queue (psych, legal; never crisis) who pressed 1 to
hang up and be called back keeping their place: a callback task dated from when they
joined the queue, due at once. The dialler calls them back in their turn: before the
callers still waiting who joined after them, after those who joined before."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.clock import Clock
from hotline.db.models import CallbackTask

log = structlog.get_logger(__name__)


class QueueCallbacks:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def request(self, *, site: str, queue: str, number: str, joined_at: datetime,
                      call_id: str | None) -> int:
        now = self._clock.now()
        async with self._sessions() as session:
            task = CallbackTask(site_code=site, source="queue", queue=queue, number=number,
                                call_id=call_id, created_at=now, requested_at=joined_at,
                                due_at=now, next_attempt_at=now)
            session.add(task)
            await session.commit()
            task_id = task.id
        log.info("queue callback requested", task=task_id, site=site, queue=queue)
        return task_id
