"""What the rendered Asterisk configuration is made of, loaded from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.db.models import Counsellor, QueueKind, Shift, Site
from routing.membership import (
    CounsellorOnDuty,
    QueueMember,
    ShiftWindow,
    on_duty_ids,
    queue_members,
)


@dataclass(frozen=True)
class EndpointPlan:
    username: str
    secret: str
    name: str


@dataclass(frozen=True)
class QueuePlan:
    name: str
    kind: str
    wait_timeout: int
    members: list[QueueMember]


@dataclass(frozen=True)
class SitePlan:
    code: str
    language: str
    numbers: list[str]
    oncall_numbers: list[str]
    queues: dict[str, QueuePlan]

    @property
    def duty_queue(self) -> str | None:
        for queue in self.queues.values():
            if queue.kind == QueueKind.DUTY:
                return queue.name
        return None


@dataclass(frozen=True)
class PbxPlan:
    sites: list[SitePlan]
    endpoints: list[EndpointPlan]
    default_site: str | None = None
    warnings: list[str] = field(default_factory=list)


async def load_plan(session: AsyncSession, *, now: datetime, default_site: str,
                    wait_timeout: int, crisis_wait_timeout: int) -> PbxPlan:
    sites = (await session.scalars(
        select(Site).options(selectinload(Site.numbers), selectinload(Site.oncall_numbers),
                             selectinload(Site.queues)).order_by(Site.id)
    )).all()
    counsellors = (await session.scalars(
        select(Counsellor).where(Counsellor.active.is_(True)).order_by(Counsellor.id)
    )).all()
    shifts = (await session.scalars(select(Shift).where(Shift.ends_at > now))).all()
    on_duty = on_duty_ids(
        (ShiftWindow(s.counsellor_id, s.starts_at, s.ends_at) for s in shifts), now
    )
    warnings: list[str] = []
    site_plans = []
    for site in sites:
        duty = [
            CounsellorOnDuty(c.id, c.sip_username, c.name, c.tier.value, frozenset(c.skills or []))
            for c in counsellors if c.site_id == site.id and c.id in on_duty
        ]
        queues = {}
        for queue in site.queues:
            timeout = queue.wait_timeout_seconds or (
                crisis_wait_timeout if queue.kind == QueueKind.CRISIS else wait_timeout
            )
            queues[queue.name] = QueuePlan(queue.name, queue.kind.value, timeout,
                                           queue_members(queue.kind.value, duty))
        oncall = [n.number for n in site.oncall_numbers]
        if not oncall:
            warnings.append(f"site {site.code}: no on-call numbers; callers nobody answers "
                            "will wait for the next free counsellor")
        if not any(q.kind == QueueKind.DUTY for q in site.queues):
            warnings.append(f"site {site.code}: no duty queue for the fallback route")
        site_plans.append(SitePlan(site.code, site.language, [n.number for n in site.numbers],
                                   oncall, queues))
    endpoints = [EndpointPlan(c.sip_username, c.sip_secret, c.name) for c in counsellors]
    known = {s.code for s in site_plans}
    chosen_default = default_site if default_site in known else (
        site_plans[0].code if site_plans else None)
    return PbxPlan(site_plans, endpoints, chosen_default, warnings)
