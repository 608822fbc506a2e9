"""What the rendered Asterisk configuration is made of, loaded from the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.calls.transfers import external_code, is_extension, queue_codes
from hotline.db.models import Counsellor, QueueKind, Shift, Site, TransferTarget
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
    # on_site (desk phone, UDP), cloud (home softphone: TLS, SRTP, NAT), mobile
    seat: str = "on_site"


@dataclass(frozen=True)
class QueuePlan:
    name: str
    kind: str
    wait_timeout: int
    members: list[QueueMember]
    wrapup: int = 0
    # Crisis queues: specialists alone for this long, then everyone (a queue rule).
    widen_after: int = 0


@dataclass(frozen=True)
class SitePlan:
    code: str
    language: str
    numbers: list[str]
    oncall_numbers: list[str]
    queues: dict[str, QueuePlan]
    # Another site's line, dialled through the carrier before the on-call mobiles.
    backup_number: str | None = None
    # Transfers (hotline-transfer-<site>): dial code → queue name, and the outside lines.
    transfer_queues: dict[str, str] = field(default_factory=dict)
    transfer_targets: list[TransferTargetPlan] = field(default_factory=list)

    @property
    def duty_queue(self) -> str | None:
        for queue in self.queues.values():
            if queue.kind == QueueKind.DUTY:
                return queue.name
        return None


@dataclass(frozen=True)
class TransferTargetPlan:
    """An outside line a counsellor may transfer a caller to: dialled as `dial_code`."""

    dial_code: str
    label: str
    number: str


@dataclass(frozen=True)
class ColleaguePlan:
    """A counsellor colleagues reach by extension (transfers)."""

    extension: str
    username: str
    name: str


@dataclass(frozen=True)
class PbxPlan:
    sites: list[SitePlan]
    endpoints: list[EndpointPlan]
    default_site: str | None = None
    warnings: list[str] = field(default_factory=list)
    colleagues: list[ColleaguePlan] = field(default_factory=list)
    # Counsellors on a mobile seat: the queue rings their mobile through the carrier.
    mobile_seats: list[MobileSeatPlan] = field(default_factory=list)


@dataclass(frozen=True)
class MobileSeatPlan:
    username: str
    number: str


async def load_plan(session: AsyncSession, *, now: datetime, default_site: str,
                    wait_timeout: int, crisis_wait_timeout: int, wrapup: int = 0,
                    widen_after: int = 15) -> PbxPlan:
    sites = (await session.scalars(
        select(Site).options(selectinload(Site.numbers), selectinload(Site.oncall_numbers),
                             selectinload(Site.queues)).order_by(Site.id)
    )).all()
    counsellors = (await session.scalars(
        select(Counsellor).where(Counsellor.active.is_(True)).order_by(Counsellor.id)
    )).all()
    shifts = (await session.scalars(select(Shift).where(Shift.ends_at > now))).all()
    targets: dict[int, list[TransferTarget]] = {}
    for target in (await session.scalars(
            select(TransferTarget).order_by(TransferTarget.site_id, TransferTarget.code))).all():
        targets.setdefault(target.site_id, []).append(target)
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
            queues[queue.name] = QueuePlan(
                queue.name, queue.kind.value, timeout, queue_members(queue.kind.value, duty),
                wrapup=queue.wrapup_seconds if queue.wrapup_seconds is not None else wrapup,
                widen_after=queue.widen_after_seconds or widen_after)
        oncall = [n.number for n in site.oncall_numbers]
        if not oncall:
            warnings.append(f"site {site.code}: no on-call numbers; callers nobody answers "
                            "will wait for the next free counsellor")
        if not any(q.kind == QueueKind.DUTY for q in site.queues):
            warnings.append(f"site {site.code}: no duty queue for the fallback route")
        site_plans.append(SitePlan(site.code, site.language, [n.number for n in site.numbers],
                                   oncall, queues, backup_number=site.backup_number,
                                   transfer_queues=queue_codes(
                                       (q.name, q.kind.value)
                                       for q in sorted(site.queues, key=lambda q: q.id)),
                                   transfer_targets=_transfer_targets(
                                       site.code, targets.get(site.id, []), warnings)))
    endpoints = [EndpointPlan(c.sip_username, c.sip_secret, c.name, c.seat.value)
                 for c in counsellors]
    known = {s.code for s in site_plans}
    chosen_default = default_site if default_site in known else (
        site_plans[0].code if site_plans else None)
    mobile_seats = [MobileSeatPlan(c.sip_username, c.mobile_number) for c in counsellors
                     if c.seat.value == "mobile" and c.mobile_number]
    return PbxPlan(site_plans, endpoints, chosen_default, warnings,
                   colleagues=_colleagues(counsellors, warnings), mobile_seats=mobile_seats)


def _transfer_targets(site: str, rows: list[TransferTarget],
                      warnings: list[str]) -> list[TransferTargetPlan]:
    plans = []
    for row in rows:
        digits = "".join(ch for ch in row.number if ch.isdigit() or ch in "+*#")
        try:
            code = external_code(row.code)
        except ValueError as error:
            warnings.append(f"site {site}: transfer target {row.label!r} left out: {error}")
            continue
        if not digits:
            warnings.append(f"site {site}: transfer target {row.label!r} left out: no number")
            continue
        plans.append(TransferTargetPlan(code, row.label, row.number))
    return plans


def _colleagues(counsellors: Sequence[Counsellor], warnings: list[str]) -> list[ColleaguePlan]:
    colleagues = []
    for counsellor in counsellors:
        if counsellor.extension is None:
            continue
        if not is_extension(counsellor.extension):
            warnings.append(f"counsellor {counsellor.sip_username}: extension "
                            f"{counsellor.extension!r} left out of transfers (digits only, not "
                            "starting with 7 or 9: those are queue and outside-line codes)")
            continue
        colleagues.append(ColleaguePlan(counsellor.extension, counsellor.sip_username,
                                        counsellor.name))
    return colleagues
