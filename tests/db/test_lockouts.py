"""SIP lock-outs announced by fail2ban: audit entries and one open alert per address."""

from datetime import UTC, datetime

from sqlalchemy import select

from ami_listener.lockouts import LockoutRecorder
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import Alert, AlertState, AuditEntry

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _event(kind: str, address: str = "127.0.0.5", **fields: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": kind, "Address": address,
            "Failures": "5", "BanSeconds": "900", "Jail": "hotline-sip", **fields}


async def _rows(engine):
    async with session_factory(engine)() as session:
        audits = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        alerts = (await session.scalars(select(Alert).order_by(Alert.id))).all()
    return audits, alerts


async def test_each_lockout_is_audited_under_one_open_alert(engine):
    recorder = LockoutRecorder(sessions=session_factory(engine), clock=Clock(fixed=NOW),
                               node="n1")
    await recorder.on_user_event(_event("HotlineLockout"))
    await recorder.on_user_event(_event("HotlineLockoutLifted"))
    await recorder.on_user_event(_event("HotlineLockout", Failures="6"))
    audits, alerts = await _rows(engine)
    assert [(a.action, a.actor, a.target) for a in audits] == [
        ("sip.lockout", "fail2ban", "address:127.0.0.5"),
        ("sip.lockout_lifted", "fail2ban", "address:127.0.0.5"),
        ("sip.lockout", "fail2ban", "address:127.0.0.5"),
    ]
    assert audits[0].after["ban_seconds"] == 900
    assert audits[0].after["locked_until"] == "2026-11-30T02:15:00+00:00"
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.key, alert.kind, alert.state) == ("sip-lockout:127.0.0.5", "sip_lockout",
                                                    AlertState.OPEN)
    assert alert.details["lockouts"] == 2
    assert alert.details["failures"] == 6
    assert "127.0.0.5" in alert.summary


async def test_a_resolved_alert_is_not_reopened_but_replaced(engine):
    sessions = session_factory(engine)
    recorder = LockoutRecorder(sessions=sessions, clock=Clock(fixed=NOW))
    await recorder.on_user_event(_event("HotlineLockout", address="2001:db8::7"))
    async with sessions() as session:
        alert = await session.scalar(select(Alert))
        assert alert is not None
        alert.state = AlertState.RESOLVED
        await session.commit()
    await recorder.on_user_event(_event("HotlineLockout", address="2001:db8::7"))
    _audits, alerts = await _rows(engine)
    assert [a.state for a in alerts] == [AlertState.RESOLVED, AlertState.OPEN]
    assert alerts[1].key == "sip-lockout:2001:db8::7"


async def test_other_user_events_and_bad_addresses_are_ignored(engine):
    recorder = LockoutRecorder(sessions=session_factory(engine), clock=Clock(fixed=NOW))
    await recorder.on_user_event(_event("HotlineRoute"))
    await recorder.on_user_event(_event("HotlineLockout", address="127.0.0.5\r\nX: y"))
    await recorder.on_user_event(_event("HotlineLockout", address=""))
    audits, alerts = await _rows(engine)
    assert audits == [] and alerts == []
