"""Answer-rate statistics on calls journaled by the real AMI call tracker and call journal,
on SQLite and PostgreSQL: the use case, then the API (roles, errors, OpenAPI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from ami_listener.call_tracking import CallTracker
from hotline.calls.storage import CallJournal
from hotline.db.engine import session_factory
from hotline.db.models import Counsellor, Queue, QueueKind, Role, Seat, ShiftTemplate, Site, Tier
from hotline.people import http as people_http
from hotline.stats import http as stats_http
from hotline.stats.services import AnswerRates, Group, InvalidPeriod, NotFound
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import SESSIONS
from tests.db.people_support import ManualClock, make_people, token_per_role

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 30)
# "Now" for the reports: the evening of that day, before midnight.
NOW = datetime(2026, 11, 30, 23, 0, tzinfo=SHANGHAI).astimezone(UTC)
LI, WANG, DESK = "PJSIP/s2001", "PJSIP/s2002", "PJSIP/desk9"


def local(hhmm: str, day: date = DAY) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(hours), int(minutes),
                    tzinfo=SHANGHAI).astimezone(UTC)


def event(name: str, **headers: str) -> Message:
    return Message({"Event": name, **headers})


class LiveStub:
    def call_changed(self, call_id: str, data: dict[str, Any]) -> None:
        pass

    def call_ended(self, call_id: str) -> None:
        pass


@dataclass
class Directory:
    interfaces: dict[str, tuple[int, str]]

    def counsellor_for_interface(self, interface: str) -> tuple[int, str] | None:
        return self.interfaces.get(interface)


class Line:
    """One caller's call, played into the real tracker (AMI) and journal (the IVR's route)."""

    def __init__(self, switch: Switch, linkedid: str, start: datetime) -> None:
        self.switch = switch
        self.linkedid = linkedid
        self.caller = {"Uniqueid": linkedid, "Linkedid": linkedid,
                       "Channel": f"PJSIP/carrier-{linkedid}", "CallerIDNum": "13900001111"}
        self.queue = "psych"
        switch.clock.at = start

    def later(self, seconds: float) -> Line:
        self.switch.clock.advance(seconds=seconds)
        return self

    @property
    def tracker(self) -> CallTracker:
        return self.switch.tracker

    async def arrive(self, *, site: str | None = "north", route: str = "queue",
                     queue: str | None = "psych", classic: bool = False) -> Line:
        await self.tracker.on_new_channel(event("Newchannel", Context="hotline-inbound",
                                                Exten="12355", **self.caller))
        self.later(8)  # the menu
        if classic:  # the classic AGI fallback: the dialplan announces the route, no site
            await self.tracker.on_user_event(event("UserEvent", UserEvent="HotlineRoute",
                                                   Route=route, Queue=queue or "",
                                                   Via="classic", Linkedid=self.linkedid))
        else:
            self.switch.journal.record(self.linkedid, self.switch.clock.now(), event="route",
                                       source="agi", data={"route": route, "queue": queue},
                                       route=route, queue=queue, site_code=site)
        return self.later(3)  # the "connecting" prompt

    async def join(self, queue: str = "psych") -> Line:
        self.queue = queue
        await self.tracker.on_queue_join(event("QueueCallerJoin", Queue=queue, Position="1",
                                               Count="1", **self.caller))
        return self

    def _member(self, interface: str) -> dict[str, str]:
        name = {LI: "李老师", WANG: "王老师"}.get(interface, "desk")
        return {"Queue": self.queue, "MemberName": name, "Interface": interface,
                "Linkedid": self.linkedid}

    async def ring(self, interface: str, *, seconds: float = 1, answered: bool = True,
                   hold: float = 0) -> Line:
        await self.tracker.on_agent_called(event("AgentCalled", **self._member(interface)))
        self.later(seconds)
        if answered:
            await self.tracker.on_agent_connect(event(
                "AgentConnect", HoldTime=str(hold), RingTime=str(seconds),
                **self._member(interface)))
            await self.tracker.on_queue_leave(event("QueueCallerLeave", Queue=self.queue,
                                                    **self.caller))
        return self

    async def ring_out(self, interface: str, seconds: float = 15) -> Line:
        await self.ring(interface, seconds=seconds, answered=False)
        await self.tracker.on_agent_ring_no_answer(event(
            "AgentRingNoAnswer", RingTime=str(seconds), **self._member(interface)))
        return self

    async def complete(self, interface: str, talk: float) -> Line:
        await self.tracker.on_agent_complete(event(
            "AgentComplete", TalkTime=str(talk), Reason="caller", **self._member(interface)))
        return self

    async def abandon(self, hold: float) -> Line:
        await self.tracker.on_queue_abandon(event("QueueCallerAbandon", Queue=self.queue,
                                                  HoldTime=str(int(hold)), **self.caller))
        await self.tracker.on_queue_leave(event("QueueCallerLeave", Queue=self.queue,
                                                **self.caller))
        return self

    async def oncall_answers(self) -> Line:
        channel = f"PJSIP/carrier-oncall-{self.linkedid}"
        await self.tracker.on_dial_begin(event("DialBegin", DestChannel=channel,
                                               DialString="13800000001@carrier",
                                               Linkedid=self.linkedid))
        self.later(5)
        await self.tracker.on_dial_end(event("DialEnd", DialStatus="ANSWER", DestChannel=channel,
                                             Linkedid=self.linkedid))
        return self

    async def hangup(self) -> Line:
        await self.tracker.on_hangup(event("Hangup", Cause="16", **self.caller))
        return self


@dataclass
class Switch:
    engine: AsyncEngine
    clock: ManualClock
    journal: CallJournal
    tracker: CallTracker
    ids: dict[str, int]

    def line(self, linkedid: str, start: datetime) -> Line:
        return Line(self, linkedid, start)

    def rates(self, now: datetime = NOW) -> AnswerRates:
        return AnswerRates(sessions=session_factory(self.engine), clock=ManualClock(now),
                           default_site="north")


async def _seed(engine: AsyncEngine) -> dict[str, int]:
    async with session_factory(engine)() as session:
        north = Site(code="north", name="北区", timezone="Asia/Shanghai",
                     short_abandon_seconds=5)
        south = Site(code="south", name="南区", timezone="Asia/Shanghai")
        north.queues = [Queue(name="crisis", kind=QueueKind.CRISIS),
                        Queue(name="psych", kind=QueueKind.PSYCH),
                        Queue(name="legal", kind=QueueKind.LEGAL)]
        south.queues = [Queue(name="south-psych", kind=QueueKind.PSYCH)]
        session.add_all([north, south])
        await session.flush()

        def counsellor(user: str, name: str, *, active: bool = True) -> Counsellor:
            return Counsellor(site_id=north.id, name=name, tier=Tier.CONSULTATION,
                              seat=Seat.ON_SITE, skills=["psych"], sip_username=user,
                              sip_secret="x", active=active)

        li, wang, gone = (counsellor("s2001", "李老师"), counsellor("s2002", "王老师"),
                          counsellor("s2003", "赵老师", active=False))
        li.shift_templates = [ShiftTemplate(weekday=0, start="08:00", minutes=660),
                              ShiftTemplate(weekday=1, start="19:00", minutes=780)]
        wang.shift_templates = [
            ShiftTemplate(weekday=0, start="19:00", minutes=780),
            # Ended before the period: does not bound a slot.
            ShiftTemplate(weekday=0, start="14:00", minutes=60, valid_until=date(2026, 1, 1))]
        # An inactive counsellor's template does not either.
        gone.shift_templates = [ShiftTemplate(weekday=0, start="03:00", minutes=180)]
        session.add_all([li, wang, gone])
        await session.commit()
        return {"li": li.id, "wang": wang.id}


@pytest.fixture
async def switch(engine: AsyncEngine) -> AsyncIterator[Switch]:
    ids = await _seed(engine)
    clock = ManualClock(NOW)
    journal = CallJournal(engine=engine, node="test", linger_seconds=0, retry_seconds=0.05)
    await journal.start()
    tracker = CallTracker(journal=journal, clock=clock, live=LiveStub(),  # type: ignore[arg-type]
                          directory=Directory({LI: (ids["li"], "李老师"),
                                               WANG: (ids["wang"], "王老师")}))
    try:
        yield Switch(engine, clock, journal, tracker, ids)
    finally:
        await journal.close()


async def _a_day_of_calls(switch: Switch) -> None:
    """Monday 30 November 2026 at the north site (and a few calls that must not count)."""
    # A 08:30: 李 answers after 4 s, talks 60 s.
    a = await switch.line("a", local("08:30")).arrive()
    await (await (await a.join()).ring(LI, hold=4)).later(60).hangup()
    await a.complete(LI, 60)
    # B 09:00: 李 rings out, 王 answers at 18 s (within 20, not 15), talks 30 s.
    b = await (await switch.line("b", local("09:00")).arrive()).join()
    await b.ring_out(LI)
    await (await b.later(2).ring(WANG, hold=18)).later(30).hangup()
    await b.complete(WANG, 30)
    # C 10:00: a crisis call, 王 answers at 10 s; no AgentComplete: talk 100 s by the clock.
    c = await (await switch.line("c", local("10:00")).arrive(route="crisis", queue="crisis")
               ).join("crisis")
    await (await c.ring(WANG, hold=10)).later(100).hangup()
    # D 11:00: a short abandon (3 s).
    d = await (await switch.line("d", local("11:00")).arrive()).join()
    await (await d.later(3).abandon(3)).hangup()
    # E 12:00: abandoned after 40 s, after ringing a desk phone nobody can name.
    e = await (await switch.line("e", local("12:00")).arrive()).join()
    await e.ring(DESK, seconds=39, answered=False)
    await (await e.later(1).abandon(40)).hangup()
    # F 13:00: nobody in the queue; the on-call phone answers 30 s after the routing.
    f = await (await switch.line("f", local("13:00")).arrive()).later(22).oncall_answers()
    await f.later(120).hangup()
    # G 20:00: 李 answers after 5 s, talks 20 s.
    g = await (await switch.line("g", local("20:00")).arrive()).join()
    await (await g.ring(LI, hold=5)).later(20).hangup()
    await g.complete(LI, 20)
    # I 07:00: routed by the classic AGI fallback (no site code), 王 answers after 2 s.
    i = await (await switch.line("i", local("07:00")).arrive(classic=True)).join()
    await (await i.ring(WANG, hold=2)).later(15).hangup()
    await i.complete(WANG, 15)
    # Not counted: still waiting (no outcome yet), another site, a message, the day before.
    await (await switch.line("h", local("21:00")).arrive()).join()
    j = await (await switch.line("j", local("14:00")).arrive(site="south", queue="south-psych")
               ).join("south-psych")
    await (await j.later(2).abandon(2)).hangup()
    await (await switch.line("k", local("15:00")).arrive(route="voicemail", queue=None)
           ).later(30).hangup()
    y = await (await switch.line("y", local("10:00", date(2026, 11, 29))).arrive()).join()
    await (await y.ring(LI, hold=1)).later(10).hangup()
    await switch.journal.flush()


async def test_a_day_per_site(switch: Switch) -> None:
    await _a_day_of_calls(switch)
    report = await switch.rates().report(site="north")
    assert (report.start, report.end) == (local("00:00"), NOW)
    assert report.short_abandon_seconds == 5
    total = report.total
    assert (total.offered, total.answered, total.answered_by_counsellor,
            total.answered_oncall) == (8, 6, 5, 1)
    assert (total.abandoned, total.short_abandoned, total.lost, total.counted) == (2, 1, 0, 7)
    assert total.answer_rate == 6 / 7
    assert total.counsellor_answer_rate == 5 / 7
    assert total.abandon_rate == 1 / 7
    # Waits: A 4, B 18, C 10, F 30 (routing → on-call answer), G 5, I 2.
    assert total.average_speed_of_answer_seconds == round(69 / 6, 3)
    assert (total.answered_within_15s, total.answered_within_20s) == (4, 5)
    assert total.service_level_15s == 4 / 7 and total.service_level_20s == 5 / 7
    assert [(g.key, g.figures.offered) for g in report.groups] == [("north", 8)]
    # The waiting call counts once it ends.
    waiting = switch.line("h", local("21:30"))
    await waiting.hangup()
    await switch.journal.flush()
    later = (await switch.rates().report(site="north")).total
    assert (later.offered, later.abandoned, later.short_abandoned) == (9, 3, 1)


async def test_per_queue_and_per_shift_slot(switch: Switch) -> None:
    await _a_day_of_calls(switch)
    rates = switch.rates()
    by_queue = await rates.report(site="north", group=Group.QUEUE)
    assert [(g.key, g.figures.offered, g.figures.answered) for g in by_queue.groups] == [
        ("crisis", 1, 1), ("legal", 0, 0), ("psych", 7, 5)]
    assert by_queue.groups[1].figures.answer_rate is None
    by_shift = await rates.report(site="north", group=Group.SHIFT)
    # Slots from the active counsellors' current templates: 08:00 and 19:00.
    assert [(g.label, g.figures.offered, g.figures.answered) for g in by_shift.groups] == [
        ("08:00–19:00", 6, 4), ("19:00–08:00", 2, 2)]
    assert by_shift.total == by_queue.total


async def test_per_counsellor(switch: Switch) -> None:
    await _a_day_of_calls(switch)
    report = await switch.rates().report(site="north", group=Group.COUNSELLOR)
    assert report.groups == []
    rows = {line.name: line for line in report.counsellors}
    assert set(rows) == {"李老师", "王老师", DESK}
    li, wang, desk = rows["李老师"], rows["王老师"], rows[DESK]
    assert li.counsellor_id == switch.ids["li"] and desk.counsellor_id is None
    assert (li.figures.offered, li.figures.rings, li.figures.answered,
            li.figures.missed_rings) == (3, 3, 2, 1)
    assert li.figures.talk_seconds == 80.0 and li.figures.crisis_answered == 0
    assert (wang.figures.offered, wang.figures.answered, wang.figures.missed_rings) == (3, 3, 0)
    assert wang.figures.talk_seconds == 145.0 and wang.figures.crisis_answered == 1
    assert (desk.figures.offered, desk.figures.rings, desk.figures.answered) == (1, 1, 0)


async def test_a_transfer_counts_once_where_it_began(switch: Switch) -> None:
    # 李 answers in psych after 4 s and transfers the caller into legal, where 王 answers
    # after 2 s: the record now names legal, 2 s and 王.
    t = await (await switch.line("t", local("09:00")).arrive()).join()
    (await t.ring(LI, hold=4)).later(60)
    await t.complete(LI, 60)
    await (await (await t.join("legal")).ring(WANG, hold=2)).later(30).hangup()
    await t.complete(WANG, 30)
    await switch.journal.flush()
    rates = switch.rates()
    by_queue = await rates.report(site="north", group=Group.QUEUE)
    assert [(g.key, g.figures.offered, g.figures.answered) for g in by_queue.groups] == [
        ("crisis", 0, 0), ("legal", 0, 0), ("psych", 1, 1)]
    assert by_queue.total.average_speed_of_answer_seconds == 4.0
    people = await rates.report(site="north", group=Group.COUNSELLOR)
    assert {line.name: (line.figures.answered, line.figures.talk_seconds)
            for line in people.counsellors} == {"李老师": (1, 60.0), "王老师": (1, 30.0)}


async def test_periods(switch: Switch) -> None:
    await _a_day_of_calls(switch)
    rates = switch.rates()
    two_days = await rates.report(site="north", from_text="2026-11-29", to_text="2026-11-30")
    assert two_days.total.offered == 9
    morning = await rates.report(site="north", from_text="2026-11-30T08:00",
                                 to_text="2026-11-30T12:00:00+08:00")
    assert morning.total.offered == 4  # A, B, C, D
    assert (await rates.report(from_text="2026-11-29", to_text="2026-11-29")).total.offered == 1
    with pytest.raises(InvalidPeriod) as refused:
        await rates.report(from_text="2026-11-30", to_text="2026-11-29")
    assert "after" in refused.value.detail["reason"]  # type: ignore[index]
    with pytest.raises(InvalidPeriod):
        await rates.report(from_text="2025-01-01", to_text="2026-11-30")
    with pytest.raises(NotFound):
        await rates.report(site="nowhere")


async def test_no_calls_no_division(switch: Switch) -> None:
    report = await switch.rates().report(site="south", group=Group.QUEUE)
    assert report.total.offered == 0 and report.total.answer_rate is None
    assert [(g.key, g.figures.counted) for g in report.groups] == [("south-psych", 0)]


# -- the API ----------------------------------------------------------------------------------

@dataclass
class Api:
    client: TestClient
    tokens: dict[Role, str]

    async def get(self, query: dict[str, str], role: Role | None = Role.SUPERVISOR,
                  path: str = "/api/stats/answer-rate") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        response = await self.client.get(f"{path}?{urlencode(query)}", headers=headers)
        return response.status, await response.json()


@pytest.fixture
async def api(switch: Switch) -> AsyncIterator[Api]:
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = session_factory(switch.engine)
    people = make_people(switch.engine, ManualClock())
    people_http.add_routes(app, people=people)
    stats_http.add_routes(app, stats=switch.rates())
    openapi_http.add_routes(app)
    tokens = await token_per_role(people)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def test_api_figures_and_roles(api: Api, switch: Switch) -> None:
    await _a_day_of_calls(switch)
    for role in (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER):
        status, body = await api.get({"site": "north", "group": "queue"}, role)
        assert status == 200, body
    assert body["site"] == "north" and body["group"] == "queue"
    assert body["from"] == "2026-11-30T00:00:00+08:00"
    assert body["to"] == "2026-11-30T23:00:00+08:00"
    total = body["total"]
    assert (total["offered"], total["answered"], total["answered_oncall"], total["abandoned"],
            total["short_abandoned"], total["answer_rate"]) == (8, 6, 1, 2, 1, 6 / 7)
    assert [g["key"] for g in body["groups"]] == ["crisis", "legal", "psych"]
    assert body["groups"][1]["figures"]["answer_rate"] is None
    status, body = await api.get({"group": "counsellor"})  # the default site
    assert status == 200 and body["site"] == "north"
    assert {c["name"] for c in body["counsellors"]} == {"李老师", "王老师", DESK}
    status, body = await api.get({"site": "north"}, Role.COUNSELLOR)
    assert status == 403 and body["error"]
    status, body = await api.get({"site": "north"}, None)
    assert status == 401


@pytest.mark.parametrize(("query", "status", "error"), [
    ({"group": "team"}, 400, "invalid query"),
    ({"site": "no such site!"}, 400, "invalid query"),
    ({"grupo": "queue"}, 400, "invalid query"),
    ({"from": "yesterday"}, 400, "invalid period"),
    ({"from": "2026-11-30", "to": "2026-11-01"}, 400, "invalid period"),
    ({"from": "2025-01-01", "to": "2026-11-30"}, 400, "invalid period"),
    ({"from": "2026-11-30T12:00:00+08:00", "to": "2026-11-30T11:00:00+08:00"}, 400,
     "invalid period"),
    ({"site": "nowhere"}, 404, "no such site"),
])
async def test_api_refuses_malformed_queries(api: Api, query: dict[str, str], status: int,
                                             error: str) -> None:
    got, body = await api.get(query)
    assert (got, body["error"]) == (status, error), body
    assert body["detail"]


async def test_api_accepts_an_unencoded_plus_and_is_in_openapi(api: Api) -> None:
    response = await api.client.get(
        "/api/stats/answer-rate?from=2026-11-30T08:00:00+08:00&to=2026-11-30T09:00:00+08:00",
        headers={"Authorization": f"Bearer {api.tokens[Role.ADMIN]}"})
    body = await response.json()
    assert response.status == 200, body
    assert body["from"] == "2026-11-30T08:00:00+08:00" and body["to"] == (
        "2026-11-30T09:00:00+08:00")
    response = await api.client.get("/api/openapi.json")
    document = await response.json()
    operation = document["paths"]["/api/stats/answer-rate"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"site", "group", "from", "to"}
    assert "AnswerRateOut" in document["components"]["schemas"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404"}
