"""`hotline demo`: a demo site with its three queues, three counsellors and a shift covering now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.audit import Actor
from hotline.db.models import (
    AuditEntry,
    Counsellor,
    DutyOfficer,
    DutyRosterEntry,
    OnCallNumber,
    Queue,
    QueueKind,
    Role,
    Seat,
    Shift,
    Site,
    SiteNumber,
    Tier,
    TransferTarget,
)
from hotline.people.services import Conflict, NotFound, People
from hotline.secrets import new_sip_secret

DEMO_QUEUES = (
    (QueueKind.CRISIS, "crisis", "危机干预（高危专席优先）"),
    (QueueKind.PSYCH, "psych", "心理咨询"),
    (QueueKind.LEGAL, "legal", "法律咨询"),
    (QueueKind.DUTY, "duty", "值班总队列（后备路由）"),
)
DEMO_COUNSELLORS = (
    ("c1001", "张老师", Tier.HIGH_RISK, Seat.CLOUD, ["psych"]),
    ("c1002", "李老师", Tier.CONSULTATION, Seat.ON_SITE, ["psych", "legal"]),
    ("c1003", "王老师", Tier.CONSULTATION, Seat.CLOUD, ["psych"]),
)
# Outside lines a counsellor may transfer a caller to: code dialled → (label, number).
DEMO_TRANSFER_TARGETS = (
    ("1", "12345 政务服务便民热线", "12345"),
    ("2", "法律援助律师", "13800000003"),
)
DEMO_ONCALL = (("13800000001", "值班主任手机"), ("13800000002", "备用值班手机"))
# The duty officer the duty alert chain rings, on duty around the clock (a year from the
# seeding); after anyone an admin puts on the roster with the default position 0.
DEMO_DUTY_OFFICER = ("值班主任（演示）", "13800000010")
DEMO_DUTY_POSITION = 100
DEMO_ADMIN = "admin"
# The demo admin's password is generated once under this name into var/secrets.toml.
DEMO_ADMIN_SECRET = "admin_password"


@dataclass(frozen=True)
class SeededCounsellor:
    username: str
    secret: str
    name: str
    tier: str
    seat: str = "on_site"


async def seed_demo(session: AsyncSession, *, site_code: str, now: datetime,
                    shift_days: int = 7) -> list[SeededCounsellor]:
    """Create what is missing; safe to run again (keeps existing secrets)."""
    site = await session.scalar(
        select(Site).where(Site.code == site_code)
        .options(selectinload(Site.queues), selectinload(Site.numbers),
                 selectinload(Site.oncall_numbers))
    )
    if site is None:
        site = Site(code=site_code, name="12355 青少年服务台（演示）")
        session.add(site)
        await session.flush()
        await session.refresh(site, ["queues", "numbers", "oncall_numbers"])
    if not site.numbers:
        site.numbers.append(SiteNumber(number="12355"))
    if not site.oncall_numbers:
        for position, (number, label) in enumerate(DEMO_ONCALL):
            site.oncall_numbers.append(OnCallNumber(position=position, number=number, label=label))
    targets = set((await session.scalars(
        select(TransferTarget.code).where(TransferTarget.site_id == site.id))).all())
    for code, label, number in DEMO_TRANSFER_TARGETS:
        if code not in targets:
            session.add(TransferTarget(site_id=site.id, code=code, label=label, number=number))
    existing_queues = {queue.kind for queue in site.queues}
    for kind, name, label in DEMO_QUEUES:
        if kind not in existing_queues:
            site.queues.append(Queue(name=name, kind=kind, label=label))
    await _seed_duty_roster(session, site_code=site_code, now=now)
    seeded = []
    for username, name, tier, seat, skills in DEMO_COUNSELLORS:
        counsellor = await session.scalar(
            select(Counsellor).where(Counsellor.sip_username == username)
            .options(selectinload(Counsellor.shifts))
        )
        if counsellor is None:
            counsellor = Counsellor(site_id=site.id, name=name, tier=tier, seat=seat,
                                    skills=skills, sip_username=username,
                                    sip_secret=new_sip_secret(),
                                    extension=username.removeprefix("c"))
            session.add(counsellor)
            await session.flush()
            await session.refresh(counsellor, ["shifts"])
        if counsellor.extension is None:
            counsellor.extension = username.removeprefix("c")
        if not any(s.starts_at <= now < s.ends_at for s in counsellor.shifts):
            start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            counsellor.shifts.append(Shift(starts_at=start,
                                           ends_at=start + timedelta(days=shift_days)))
        seeded.append(SeededCounsellor(username, counsellor.sip_secret, name, tier.value,
                                       counsellor.seat.value))
    session.add(AuditEntry(at=now, actor="cli", action="demo.seed", target=f"site:{site_code}",
                           after={"counsellors": [c.username for c in seeded]}))
    await session.commit()
    return seeded


async def _seed_duty_roster(session: AsyncSession, *, site_code: str, now: datetime) -> None:
    name, number = DEMO_DUTY_OFFICER
    officer = await session.scalar(select(DutyOfficer).where(
        DutyOfficer.name == name, DutyOfficer.number == number))
    if officer is None:
        officer = DutyOfficer(name=name, number=number)
        session.add(officer)
        await session.flush()
    if await session.scalar(select(DutyRosterEntry.id).where(
            DutyRosterEntry.officer_id == officer.id, DutyRosterEntry.starts_at <= now,
            DutyRosterEntry.ends_at > now)) is None:
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        session.add(DutyRosterEntry(officer_id=officer.id, site_code=site_code,
                                    starts_at=start, ends_at=start + timedelta(days=365),
                                    position=DEMO_DUTY_POSITION))


async def seed_admin(people: People, *, password: str) -> bool:
    """Create the demo `admin` user (role admin) unless it exists; True when created.

    An existing `admin` keeps its password, role and tokens: running the demo again is safe.
    """
    try:
        await people.user_named(DEMO_ADMIN)
        return False
    except NotFound:
        pass
    try:
        await people.create_user(Actor.system("cli"), username=DEMO_ADMIN, role=Role.ADMIN,
                                 password=password, display_name="演示管理员")
    except Conflict:  # created by a concurrent run
        return False
    return True
