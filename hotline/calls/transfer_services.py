"""The transfer use case: check who asks and where to, find the counsellor's channel, ask
Asterisk (AMI BlindTransfer or Atxfer), and leave a trace (audit log, call journal).

A transfer never drops the caller: a destination that is not one of the site's codes is
refused here before Asterisk hears of it, Asterisk refuses codes its dialplan does not
have, and a leg nobody answers brings the caller back (extensions.conf hotline-transfer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from ami_listener.connection import AmiConnectionLost, AmiError, AmiNotConnected
from ami_listener.transfers import (
    AmiActions,
    attended_transfer,
    blind_transfer,
    call_channels,
)
from hotline.audit import Actor, record_audit
from hotline.calls.storage import CallJournal
from hotline.calls.transfers import (
    NotTransferable,
    TransferIn,
    TransferOut,
    endpoint_of,
    external_code,
    is_extension,
    queue_codes,
    transfer_context,
    transferer,
)
from hotline.clock import Clock
from hotline.db.models import Call, Counsellor, Queue, Role, Site, TransferTarget

log = structlog.get_logger(__name__)


class TransferRefused(Exception):
    """The transfer was not sent to Asterisk (or Asterisk refused it); `status` is the HTTP
    status that says why."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


@dataclass(frozen=True)
class _Plan:
    call: Call
    site: str
    exten: str
    counsellors: frozenset[str]  # every counsellor's SIP username
    only: str | None  # a counsellor transfers only their own call
    target_username: str | None  # a colleague's SIP username


@dataclass
class Transfers:
    sessions: async_sessionmaker[AsyncSession]
    ami: AmiActions
    journal: CallJournal
    clock: Clock
    node: str
    default_site: str

    async def transfer(self, actor: Actor, call_id: str, request: TransferIn) -> TransferOut:
        plan = await self._plan(actor, call_id, request)
        context = transfer_context(plan.site)
        try:
            channels = await call_channels(self.ami, plan.call.linkedid)
            channel = transferer(channels, plan.call.linkedid, plan.counsellors, only=plan.only)
        except NotTransferable as error:
            raise TransferRefused(409, str(error)) from error
        except AmiError as error:
            raise TransferRefused(503, "Asterisk cannot be reached now", str(error)) from error
        by = endpoint_of(channel.name) or ""
        if plan.target_username is not None and plan.target_username == by:
            raise TransferRefused(422, "a counsellor cannot transfer a caller to themselves")
        send = blind_transfer if request.mode == "blind" else attended_transfer
        trace = {"mode": request.mode, "to": request.to.model_dump(), "exten": plan.exten,
                 "context": context, "channel": channel.name, "counsellor": by}
        try:
            answer = await send(self.ami, channel=channel.name, context=context,
                                exten=plan.exten)
        except AmiError as error:
            await self._trace(actor, plan.call, {**trace, "accepted": False,
                                                 "asterisk": f"{type(error).__name__}: {error}"})
            if isinstance(error, AmiConnectionLost):
                raise TransferRefused(502, "the AMI link dropped before Asterisk answered: the "
                                           "transfer may have started; see the call's events",
                                      str(error)) from error
            if isinstance(error, AmiNotConnected):
                raise TransferRefused(503, "Asterisk cannot be reached now", str(error)) from error
            raise TransferRefused(504, "Asterisk did not answer in time", str(error)) from error
        await self._trace(actor, plan.call, {**trace, "accepted": answer.ok,
                                             "asterisk": answer.message})
        if not answer.ok:
            raise TransferRefused(409, "Asterisk refused the transfer; the counsellor is still "
                                       "with the caller", answer.message)
        return TransferOut(call_id=plan.call.id, mode=request.mode, to=request.to,
                           context=context, exten=plan.exten, channel=channel.name,
                           counsellor=by)

    async def _plan(self, actor: Actor, call_id: str, request: TransferIn) -> _Plan:
        async with self.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                raise TransferRefused(404, "no such call", {"id": call_id})
            if call.ended_at is not None:
                raise TransferRefused(409, "the call has ended")
            if call.node != self.node:
                raise TransferRefused(409, f"the call is on node {call.node}: ask that node")
            counsellors = (await session.scalars(select(Counsellor))).all()
            only = None
            if actor.role == Role.COUNSELLOR:
                mine = next((c for c in counsellors
                             if actor.user_id is not None and c.user_id == actor.user_id), None)
                if mine is None:
                    raise TransferRefused(403, "this sign-in is not linked to a counsellor")
                only = mine.sip_username
            site = await self._site(session, call)
            exten, target_username = await self._destination(session, site, request)
        return _Plan(call, site.code, exten, frozenset(c.sip_username for c in counsellors),
                     only, target_username)

    async def _site(self, session: AsyncSession, call: Call) -> Site:
        code = call.site_code
        if code is None and call.queue:
            queue = await session.scalar(select(Queue).where(Queue.name == call.queue)
                                         .options(selectinload(Queue.site)))
            code = queue.site.code if queue else None
        site = await session.scalar(select(Site).where(Site.code == (code or self.default_site))
                                    .options(selectinload(Site.queues)))
        if site is None:
            raise TransferRefused(409, "the call's site is unknown", {"site": code})
        return site

    async def _destination(self, session: AsyncSession, site: Site,
                           request: TransferIn) -> tuple[str, str | None]:
        """The code to dial in the site's transfer context, and a colleague's username."""
        kind, target = request.to.kind, request.to.target
        if kind == "queue":
            codes = queue_codes((q.name, q.kind.value) for q in sorted(site.queues,
                                                                        key=lambda q: q.id))
            code = next((c for c, name in codes.items() if name == target), None)
            if code is None:
                known = sorted(codes.values())
                raise TransferRefused(422, f"site {site.code} has no queue {target!r} to "
                                           "transfer to", {"queues": known})
            return code, None
        if kind == "counsellor":
            colleague = await session.scalar(select(Counsellor).where(
                Counsellor.extension == target, Counsellor.active.is_(True)))
            if colleague is None or not is_extension(target):
                raise TransferRefused(422, f"no counsellor has the extension {target!r}")
            return target, colleague.sip_username
        line = await session.scalar(select(TransferTarget).where(
            TransferTarget.site_id == site.id, TransferTarget.code == target))
        if line is None:
            lines = sorted((await session.scalars(select(TransferTarget.code).where(
                TransferTarget.site_id == site.id))).all())
            raise TransferRefused(422, f"site {site.code} has no outside line with the code "
                                       f"{target!r}", {"codes": lines})
        return external_code(line.code), None

    async def _trace(self, actor: Actor, call: Call, trace: dict[str, Any]) -> None:
        now = self.clock.now()
        async with self.sessions() as session:
            record_audit(session, actor=actor, at=now, action="call.transfer",
                         target=f"call:{call.id}", after=trace)
            await session.commit()
        self.journal.record(call.linkedid, now, event="transfer_request", source="api",
                            data={**trace, "by_user": actor.username})
        log.info("transfer requested", call_id=call.id, actor=actor.username, **trace)
