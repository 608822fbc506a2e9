"""SIP lock-outs, as fail2ban reports them: an audit entry for each, and an alert.

fail2ban (``hotline.asterisk.lockout``) drops the packets of an address that kept failing
SIP authentication and announces it with an AMI UserEvent sent by a user that may only
send UserEvents: ``HotlineLockout`` (Address, Failures, BanSeconds, Jail) when the lock-out
starts, ``HotlineLockoutLifted`` when it ends. This handler writes each to the audit log and
keeps one open alert per address (``sip-lockout:<address>``): a repeated lock-out updates it,
the end of a lock-out is noted in it — a person acknowledges it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_listener.connection import AmiConnection
from hotline.alerts.services import Alerts, AlertView
from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import Alert, AlertState

log = structlog.get_logger(__name__)

ACTOR = Actor.system("fail2ban")
ALERT_KIND = "sip_lockout"


def alert_key(address: str) -> str:
    return f"sip-lockout:{address}"


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    return value if isinstance(value, str) else ""


def _int(value: str) -> int:
    try:
        return max(0, int(value))
    except ValueError:
        return 0


class LockoutRecorder:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 node: str = "", alerts: Alerts | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._node = node
        # A new lock-out alert reaches the duty notifiers too.
        self._alerts = alerts

    def subscribe(self, ami: AmiConnection) -> None:
        """Every event binding of the lock-out record, in one place."""
        ami.subscribe("UserEvent", self.on_user_event)

    async def on_user_event(self, message: Mapping[str, Any]) -> None:
        kind = _text(message, "UserEvent")
        if kind not in ("HotlineLockout", "HotlineLockoutLifted"):
            return
        try:
            address = str(ipaddress.ip_address(_text(message, "Address")))
        except ValueError:
            log.warning("lockout.bad_address", address=_text(message, "Address")[:64])
            return
        failures = _int(_text(message, "Failures"))
        ban_seconds = _int(_text(message, "BanSeconds"))
        jail = _text(message, "Jail")[:64]
        if kind == "HotlineLockout":
            await self.locked_out(address, failures=failures, ban_seconds=ban_seconds, jail=jail)
        else:
            await self.lifted(address, jail=jail)

    async def _open_alert(self, session: AsyncSession, address: str) -> Alert | None:
        return await session.scalar(
            select(Alert).where(Alert.key == alert_key(address),
                                Alert.state != AlertState.RESOLVED).order_by(Alert.id.desc())
            .limit(1))

    async def locked_out(self, address: str, *, failures: int, ban_seconds: int,
                         jail: str = "") -> None:
        now = self._clock.now()
        until = now + timedelta(seconds=ban_seconds)
        details = {"address": address, "failures": failures, "ban_seconds": ban_seconds,
                   "locked_until": until.isoformat(), "jail": jail, "node": self._node}
        async with self._sessions() as session:
            record_audit(session, actor=ACTOR, at=now, action="sip.lockout",
                         target=f"address:{address}", after=details)
            alert = await self._open_alert(session, address)
            new = alert is None
            summary = (f"SIP 地址 {address} 连续 {failures} 次认证失败，已封禁 {ban_seconds} 秒 "
                       f"(SIP address locked out after {failures} failed sign-ins)")
            if alert is None:
                alert = Alert(key=alert_key(address), kind=ALERT_KIND, severity="warning",
                              summary=summary, details={**details, "lockouts": 1},
                              raised_at=now, last_seen_at=now)
                session.add(alert)
            else:
                count = int(alert.details.get("lockouts", 1)) + 1 if alert.details else 2
                alert.summary = summary
                alert.details = {**details, "lockouts": count}
                alert.last_seen_at = now
            await session.commit()
            view = AlertView.of(alert)
        if new and self._alerts is not None:
            await self._alerts.notify(view)
        log.warning("lockout.started", address=address, failures=failures,
                    ban_seconds=ban_seconds)

    async def lifted(self, address: str, *, jail: str = "") -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            record_audit(session, actor=ACTOR, at=now, action="sip.lockout_lifted",
                         target=f"address:{address}", after={"address": address, "jail": jail})
            alert = await self._open_alert(session, address)
            if alert is not None:
                alert.details = {**(alert.details or {}), "lifted_at": now.isoformat()}
                alert.last_seen_at = now
            await session.commit()
        log.info("lockout.lifted", address=address)
