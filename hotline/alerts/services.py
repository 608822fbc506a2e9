"""Alerts: one open alert per key, raised, updated while the problem lasts, acknowledged by a
person, resolved when the problem is gone. A new alert goes to every duty notifier: the
log and Redis (`<prefix>alerts`) here; the duty officer's phone and the webhook come with
the crisis capability (crisis/), through the same `DutyNotifier` hook.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as redis
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import Alert, AlertState

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AlertView:
    id: int
    key: str
    kind: str
    site: str | None
    severity: str
    summary: str
    details: dict[str, Any]
    state: str
    raised_at: datetime
    last_seen_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    incident_id: int | None = None  # a crisis alert's incident (crisis/incidents.py)

    @classmethod
    def of(cls, row: Alert) -> AlertView:
        return cls(row.id, row.key, row.kind, row.site_code, row.severity, row.summary,
                   dict(row.details or {}), row.state.value, row.raised_at, row.last_seen_at,
                   row.acknowledged_by, row.acknowledged_at, row.resolved_at, row.incident_id)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class DutyNotifier(Protocol):
    async def notify(self, alert: AlertView) -> None: ...


class LogNotifier:
    """Every new alert in the log, loudly."""

    async def notify(self, alert: AlertView) -> None:
        log.warning("ALERT", key=alert.key, kind=alert.kind, site=alert.site,
                    severity=alert.severity, summary=alert.summary)


class RedisNotifier:
    """Every new alert on the `<prefix>alerts` channel, for supervisors' screens."""

    def __init__(self, *, url: str, prefix: str, timeout: float = 0.5) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=timeout,
                                            socket_connect_timeout=timeout)
        self.channel = f"{prefix}alerts"

    async def close(self) -> None:
        await self._client.aclose()

    async def notify(self, alert: AlertView) -> None:
        try:
            await self._client.publish(self.channel, json.dumps(alert.as_json(), default=str,
                                                                ensure_ascii=False))
        except (redis.RedisError, OSError) as error:
            log.warning("alert not published on redis", key=alert.key, error=repr(error))


class AlertNotFound(Exception):
    pass


# Called after a person acknowledged an alert (the incidents' timeline listens).
AcknowledgedHook = Callable[[AlertView, Actor], Awaitable[None]]


class Alerts:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 notifiers: Sequence[DutyNotifier] = ()) -> None:
        self._sessions = sessions
        self._clock = clock
        self.notifiers = list(notifiers)
        self.on_acknowledged: list[AcknowledgedHook] = []

    async def raise_alert(self, *, key: str, kind: str, summary: str, site: str | None = None,
                          severity: str = "warning", details: dict[str, Any] | None = None,
                          incident_id: int | None = None) -> tuple[AlertView, bool]:
        """Open an alert for `key`, or update the one already open. True when new."""
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.scalar(select(Alert).where(
                Alert.key == key, Alert.state != AlertState.RESOLVED).order_by(Alert.id.desc()))
            new = row is None
            if row is None:
                row = Alert(key=key, kind=kind, site_code=site, severity=severity,
                            summary=summary, details=details or {}, state=AlertState.OPEN,
                            raised_at=now, last_seen_at=now, incident_id=incident_id)
                session.add(row)
            else:
                row.summary, row.details, row.last_seen_at = summary, details or {}, now
            await session.commit()
            view = AlertView.of(row)
        if new:
            await self.notify(view)
        return view, new

    async def notify(self, view: AlertView) -> None:
        """Tell every duty notifier about a new alert (also for alerts written elsewhere)."""
        for notifier in self.notifiers:
            try:
                await notifier.notify(view)
            except Exception:  # one failing channel must not stop the others
                log.exception("duty notifier failed", notifier=repr(notifier))

    async def resolve(self, key: str) -> bool:
        now = self._clock.now()
        async with self._sessions() as session:
            rows = (await session.scalars(select(Alert).where(
                Alert.key == key, Alert.state != AlertState.RESOLVED))).all()
            for row in rows:
                row.state, row.resolved_at = AlertState.RESOLVED, now
            await session.commit()
        if rows:
            log.info("alert resolved", key=key)
        return bool(rows)

    async def acknowledge(self, actor: Actor, alert_id: int) -> AlertView:
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(Alert, alert_id)
            if row is None:
                raise AlertNotFound(f"no alert {alert_id}")
            changed = row.state == AlertState.OPEN
            if changed:
                row.state = AlertState.ACKNOWLEDGED
                row.acknowledged_by, row.acknowledged_at = actor.username, now
                record_audit(session, actor=actor, at=now, action="alert.acknowledge",
                             target=f"alert:{alert_id}", after={"key": row.key})
            await session.commit()
            view = AlertView.of(row)
        if changed:
            for hook in self.on_acknowledged:
                try:
                    await hook(view, actor)
                except Exception:  # the acknowledgement stands; a listener's failure is logged
                    log.exception("alert acknowledgement listener failed", alert=alert_id)
        return view

    async def open_keys(self, kinds: Sequence[str]) -> set[str]:
        async with self._sessions() as session:
            keys = (await session.scalars(select(Alert.key).where(
                Alert.kind.in_(list(kinds)), Alert.state != AlertState.RESOLVED))).all()
        return set(keys)

    async def list(self, *, state: str | None = None, limit: int = 100) -> list[AlertView]:
        async with self._sessions() as session:
            query = select(Alert).order_by(Alert.id.desc()).limit(limit)
            if state == "active":
                query = query.where(Alert.state != AlertState.RESOLVED)
            elif state is not None:
                query = query.where(Alert.state == AlertState(state))
            return [AlertView.of(row) for row in (await session.scalars(query)).all()]
