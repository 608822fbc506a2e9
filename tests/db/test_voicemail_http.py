"""The voicemail API through aiohttp's test server, on SQLite and PostgreSQL: messages and
their audio (every listen audited), the callback worklist, assign and outcome, and the
crisis keyword list (admins edit it; a list with problems is refused with each one)."""

from __future__ import annotations

import math
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.alerts.services import Alerts
from hotline.db.engine import session_factory
from hotline.db.models import (
    AuditEntry,
    CallbackState,
    CallbackTask,
    Counsellor,
    Role,
    Seat,
    Site,
    Tier,
    Transcription,
    VoicemailMessage,
)
from hotline.people import http as people_http
from hotline.people.services import People
from hotline.rules.published import RoutingTable
from hotline.web import openapi as openapi_http
from hotline.web.auth import bearer_auth, json_errors
from hotline.web.keys import COMPONENTS, SESSIONS
from routing.keywords import DEFAULT_KEYWORDS
from tests.db.people_support import ManualClock, make_people, token_per_role
from voicemail import http as voicemail_http
from voicemail.ingest import SpoolIngester
from voicemail.processing import MessageProcessor
from voicemail.services import Voicemail
from voicemail.spool import spool_file
from voicemail.store import MessageStore
from voicemail.transcription import Transcriber

# 23:30 in Shanghai on Sunday 2026-11-29: the default site is closed until 08:00.
NIGHT = datetime(2026, 11, 29, 15, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
NAME = "20261129T152900Z-1764430140.3-13912345678.wav"


def tone(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for n in range(int(8000 * seconds)):
        frames += int(8000 * math.sin(2 * math.pi * 440 * n / 8000)).to_bytes(
            2, "little", signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(frames))


@dataclass
class Api:
    client: TestClient
    people: People
    engine: AsyncEngine
    store: MessageStore
    tokens: dict[Role, str]

    async def call(self, method: str, path: str, role: Role | None = Role.COUNSELLOR,
                   json: object = None, data: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.request(method, path, headers=headers, json=json,
                                             data=data)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body

    async def audit(self, action: str) -> list[AuditEntry]:
        async with session_factory(self.engine)() as session:
            return list((await session.scalars(select(AuditEntry).where(
                AuditEntry.action == action).order_by(AuditEntry.id))).all())

    async def task(self, task_id: int) -> CallbackTask:
        async with session_factory(self.engine)() as session:
            return await session.get_one(CallbackTask, task_id)


@pytest.fixture
async def api(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Api]:
    sessions = session_factory(engine)
    store = MessageStore(root=tmp_path / "store")
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[SESSIONS] = sessions
    app[COMPONENTS] = SimpleNamespace(  # type: ignore[assignment]
        voicemail=Voicemail(sessions=sessions, clock=ManualClock(NOW), store=store))
    people = make_people(engine, ManualClock())
    people_http.add_routes(app, people=people)
    voicemail_http.add_routes(app)
    openapi_http.add_routes(app)
    tokens = await token_per_role(people)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, people, engine, store, tokens)


async def leave_message(api: Api, tmp_path: Path) -> int:
    """A message through the real path: spool → ingest → audio, (no) transcript, callback."""
    sessions = session_factory(api.engine)
    clock = ManualClock(NIGHT)
    spool = tmp_path / "spool"
    path = spool / "default" / NAME
    tone(path)
    ingester = SpoolIngester(sessions=sessions, clock=clock, store=api.store, spool_dir=spool,
                             node="pbx1")
    message = await ingester.ingest(spool_file(spool, path))
    processor = MessageProcessor(
        sessions=sessions, clock=clock, store=api.store, transcriber=Transcriber(model_dir=None),
        routing=RoutingTable(sessions=sessions, clock=clock, default_site="default",
                             crisis_priority=10),
        alerts=Alerts(sessions=sessions, clock=clock, notifiers=[]), node="node-a")
    assert await processor.process(message)
    return message


async def add_task(api: Api, name: str, *, left_at: datetime, urgent: bool = False,
                   transcribed: bool = True, site: str = "default",
                   state: CallbackState = CallbackState.PENDING) -> int:
    """A message row and its callback task, written directly."""
    async with session_factory(api.engine)() as session:
        message = VoicemailMessage(
            node="pbx1", spool_path=f"{site}/{name}.wav", site_code=site,
            caller_number="13800138000", recorded_at=left_at, ingested_at=left_at,
            sha256="0" * 64, size_bytes=44, original_path=f"originals/{site}/{name}.wav",
            transcription=Transcription.TRANSCRIBED if transcribed
            else Transcription.UNTRANSCRIBED, urgent=urgent, processed_at=left_at)
        session.add(message)
        await session.flush()
        task = CallbackTask(site_code=site, message_id=message.id, number="13800138000",
                            urgent=urgent, untranscribed=not transcribed, created_at=left_at,
                            requested_at=left_at, due_at=left_at, next_attempt_at=left_at,
                            state=state)
        session.add(task)
        await session.commit()
        return task.id


async def add_counsellor(api: Api) -> int:
    async with session_factory(api.engine)() as session:
        site = Site(code="default", name="12355")
        session.add(site)
        await session.flush()
        counsellor = Counsellor(site_id=site.id, name="李老师", tier=Tier.CONSULTATION,
                                seat=Seat.CLOUD, sip_username="c1001", sip_secret="x" * 32)
        session.add(counsellor)
        await session.commit()
        return counsellor.id


# -- messages ---------------------------------------------------------------------------------

async def test_messages_list_and_detail(api: Api, tmp_path: Path) -> None:
    message = await leave_message(api, tmp_path)
    for role in (Role.ADMIN, Role.SUPERVISOR, Role.DUTY_OFFICER, Role.COUNSELLOR):
        status, body = await api.call("GET", "/api/voicemail/messages", role)
        assert status == 200, body
    [item] = body["items"]
    assert item["id"] == message and item["site"] == "default"
    assert item["caller_number"] == "13912345678"
    assert item["audio"] == "ok" and item["transcription"] == "untranscribed"
    assert item["urgent"] is False and item["keyword_hits"] == []
    assert item["callback"]["message_id"] == message
    assert item["callback"]["untranscribed"] is True and item["callback"]["state"] == "pending"

    status, detail = await api.call("GET", f"/api/voicemail/messages/{message}")
    # The detail adds the callback's attempts (none yet); lists leave them out.
    assert status == 200 and detail["callback"].pop("attempts") == []
    assert item["callback"].pop("attempts") is None and detail == item
    assert datetime.fromisoformat(detail["recorded_at"]) == datetime(2026, 11, 29, 15, 29,
                                                                     tzinfo=UTC)

    for query, count in (("?urgent=true", 0), ("?urgent=false", 1), ("?site=north", 0),
                         ("?site=default&limit=1", 1)):
        status, body = await api.call("GET", f"/api/voicemail/messages{query}")
        assert status == 200 and len(body["items"]) == count, query
    for query in ("?limit=0", "?limit=1001", "?urgent=maybe", "?colour=red"):
        status, body = await api.call("GET", f"/api/voicemail/messages{query}")
        assert status == 400 and body["error"] == "invalid query", query


async def test_audio_download_returns_the_file_and_is_audited(api: Api, tmp_path: Path) -> None:
    message = await leave_message(api, tmp_path)
    async with session_factory(api.engine)() as session:
        row = await session.get_one(VoicemailMessage, message)
        web_path, original_path = row.web_path, row.original_path
    assert web_path is not None

    headers = {"Authorization": f"Bearer {api.tokens[Role.COUNSELLOR]}"}
    response = await api.client.get(f"/api/voicemail/messages/{message}/audio", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/ogg"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="message-{message}.ogg"')
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == api.store.path(web_path).read_bytes()

    response = await api.client.get(f"/api/voicemail/messages/{message}/audio?original=true",
                                    headers=headers)
    assert response.status == 200 and response.headers["Content-Type"] == "audio/wav"
    assert await response.read() == api.store.path(original_path).read_bytes()

    entries = await api.audit("voicemail.audio")
    assert [(e.actor, e.target, e.after) for e in entries] == [
        ("u_counsellor", f"voicemail:{message}", {"file": "web"}),
        ("u_counsellor", f"voicemail:{message}", {"file": "original"}),
    ]
    assert all(e.at == NOW and e.actor_user_id is not None for e in entries)


async def test_audio_without_a_web_copy_falls_back_to_the_original(api: Api) -> None:
    task = await add_task(api, "no-web-copy", left_at=NIGHT)
    message = (await api.task(task)).message_id
    tone(api.store.path("originals/default/no-web-copy.wav"))
    headers = {"Authorization": f"Bearer {api.tokens[Role.DUTY_OFFICER]}"}
    response = await api.client.get(f"/api/voicemail/messages/{message}/audio", headers=headers)
    assert response.status == 200 and response.headers["Content-Type"] == "audio/wav"
    [entry] = await api.audit("voicemail.audio")
    assert entry.actor == "u_duty_officer" and entry.after == {"file": "original"}


async def test_unknown_messages_tasks_and_missing_files_are_404(api: Api) -> None:
    task = await add_task(api, "file-gone", left_at=NIGHT)  # no file in the store
    message = (await api.task(task)).message_id
    for method, path, body in (
            ("GET", "/api/voicemail/messages/999999", None),
            ("GET", "/api/voicemail/messages/999999/audio", None),
            ("GET", f"/api/voicemail/messages/{message}/audio", None),
            ("GET", f"/api/voicemail/messages/{message}/audio?original=1", None),
            ("POST", "/api/callbacks/999999/assign", {"counsellor_id": None}),
            ("POST", "/api/callbacks/999999/outcome", {"outcome": "reached"})):
        status, answer = await api.call(method, path, json=body)
        assert status == 404, (path, answer)
        assert answer["error"] and answer["detail"] is None
    status, _ = await api.call("GET", "/api/voicemail/messages/not-a-number")
    assert status == 404
    assert await api.audit("voicemail.audio") == []  # nothing was heard


# -- the callback worklist -------------------------------------------------------------------

async def test_worklist_is_urgent_first_then_untranscribed_then_oldest(api: Api) -> None:
    early = NIGHT - timedelta(hours=6)
    routine_old = await add_task(api, "routine-old", left_at=early)
    routine_new = await add_task(api, "routine-new", left_at=NIGHT)
    unscanned = await add_task(api, "unscanned", left_at=NIGHT + timedelta(minutes=5),
                               transcribed=False)
    unscanned_old = await add_task(api, "unscanned-old", left_at=early + timedelta(hours=1),
                                   transcribed=False)
    urgent = await add_task(api, "urgent", left_at=NIGHT + timedelta(minutes=10), urgent=True)
    done = await add_task(api, "done", left_at=early - timedelta(hours=1),
                          state=CallbackState.DONE)
    elsewhere = await add_task(api, "elsewhere", left_at=early + timedelta(minutes=30),
                               site="north")

    status, body = await api.call("GET", "/api/callbacks?site=default")
    assert status == 200, body
    assert [t["id"] for t in body["items"]] == [urgent, unscanned_old, unscanned, routine_old,
                                                routine_new]
    status, body = await api.call("GET", "/api/callbacks", Role.DUTY_OFFICER)
    assert [t["id"] for t in body["items"]] == [urgent, unscanned_old, unscanned, routine_old,
                                                elsewhere, routine_new]
    status, body = await api.call("GET", "/api/callbacks?site=default&include_closed=true")
    assert [t["id"] for t in body["items"]] == [urgent, unscanned_old, unscanned, done,
                                                routine_old, routine_new]
    status, body = await api.call("GET", "/api/callbacks?limit=2")
    assert [t["id"] for t in body["items"]] == [urgent, unscanned_old]
    first = body["items"][0]
    assert first["urgent"] is True and first["state"] == "pending"
    assert first["source"] == "voicemail" and first["number"] == "13800138000"
    status, body = await api.call("GET", "/api/callbacks?include_closed=perhaps")
    assert status == 400


async def test_assign_and_outcome_are_audited_and_reached_closes_the_task(api: Api) -> None:
    counsellor = await add_counsellor(api)
    task = await add_task(api, "to-call", left_at=NIGHT)

    status, body = await api.call("POST", f"/api/callbacks/{task}/assign",
                                  json={"counsellor_id": counsellor})
    assert status == 200, body
    assert body["id"] == task and body["assigned_counsellor_id"] == counsellor
    [entry] = await api.audit("callback.assign")
    assert (entry.actor, entry.target) == ("u_counsellor", f"callback:{task}")
    assert entry.before["assigned_counsellor_id"] is None
    assert entry.after["assigned_counsellor_id"] == counsellor
    status, body = await api.call("POST", f"/api/callbacks/{task}/assign",
                                  json={"counsellor_id": 999999})
    assert status == 422 and "no counsellor" in body["error"]
    status, body = await api.call("POST", f"/api/callbacks/{task}/assign", Role.SUPERVISOR,
                                  json={"counsellor_id": None})
    assert status == 200 and body["assigned_counsellor_id"] is None

    # Not answered: recorded, the task stays open for its next attempt.
    status, body = await api.call("POST", f"/api/callbacks/{task}/outcome",
                                  json={"outcome": "no_answer", "note": "打了两次"})
    assert status == 200, body
    assert body["state"] == "pending" and body["outcome"] == "no_answer"
    assert body["note"] == "打了两次" and body["closed_at"] is None
    status, body = await api.call("POST", f"/api/callbacks/{task}/outcome",
                                  json={"outcome": "reached", "note": "已联系，情况稳定"})
    assert status == 200, body
    assert body["state"] == "done" and body["outcome"] == "reached"
    assert body["next_attempt_at"] is None
    assert datetime.fromisoformat(body["closed_at"]) == NOW
    assert body["note"] == "打了两次\n已联系，情况稳定"
    row = await api.task(task)
    assert row.state == CallbackState.DONE and row.closed_at == NOW
    entries = await api.audit("callback.outcome")
    assert [e.after["outcome"] for e in entries] == ["no_answer", "reached"]
    assert entries[1].before["state"] == "pending" and entries[1].after["state"] == "done"
    status, body = await api.call("GET", "/api/callbacks")
    assert status == 200 and body["items"] == []


@pytest.mark.parametrize("body", [
    {"outcome": "maybe"},
    {"outcome": "reached", "note": "x" * 2001},
    {"outcome": "reached", "colour": "red"},
    {},
])
async def test_an_invalid_outcome_is_422(api: Api, body: dict[str, Any]) -> None:
    task = await add_task(api, "to-call", left_at=NIGHT)
    status, answer = await api.call("POST", f"/api/callbacks/{task}/outcome", json=body)
    assert status == 422 and answer["error"] == "invalid body", answer
    assert (await api.task(task)).outcome is None


# -- crisis keywords --------------------------------------------------------------------------

EDITED = [
    {"term": "自杀", "category": "suicide", "synonyms": ["不想活", "轻生"],
     "exclusions": ["不想活动"]},
    {"term": "家暴", "category": "domestic_violence", "synonyms": ["爸爸打我"],
     "exclusions": []},
]


async def test_keywords_default_then_replaced_by_an_admin(api: Api) -> None:
    status, body = await api.call("GET", "/api/crisis-keywords")
    assert status == 200, body
    assert len(body["items"]) == len(DEFAULT_KEYWORDS.entries)
    assert "自杀" in {entry["term"] for entry in body["items"]}

    status, body = await api.call("PUT", "/api/crisis-keywords", Role.ADMIN,
                                  json={"items": EDITED})
    assert status == 200, body
    assert body == {"items": EDITED}
    status, body = await api.call("GET", "/api/crisis-keywords", Role.DUTY_OFFICER)
    assert status == 200 and body == {"items": EDITED}
    [entry] = await api.audit("keywords.replace")
    assert entry.actor == "u_admin" and entry.after == {"entries": EDITED}
    assert len(entry.before["entries"]) == len(DEFAULT_KEYWORDS.entries)


async def test_a_keyword_list_with_problems_is_refused_with_each_problem(api: Api) -> None:
    await api.call("PUT", "/api/crisis-keywords", Role.ADMIN, json={"items": EDITED})
    bad = [
        {"term": "死", "category": "suicide"},
        {"term": "跳楼", "category": "suicide", "exclusions": ["大甩卖"]},
    ]
    status, body = await api.call("PUT", "/api/crisis-keywords", Role.ADMIN,
                                  json={"items": bad})
    assert status == 422, body
    assert body["error"] == "the keyword list is not valid"
    assert [problem["entry"] for problem in body["detail"]] == ["死", "跳楼"]
    assert "one character" in body["detail"][0]["reason"]
    assert "contains neither" in body["detail"][1]["reason"]
    status, body = await api.call("GET", "/api/crisis-keywords")
    assert body == {"items": EDITED}  # nothing changed
    assert len(await api.audit("keywords.replace")) == 1


@pytest.mark.parametrize("body", [
    {"items": []},  # no entries would mean the built-in defaults again
    {"items": [{"term": "自杀", "category": "sadness"}]},
    {"items": [{"term": "自" * 65, "category": "suicide"}]},
    {"items": [{"term": "自杀", "category": "suicide", "synonyms": ["轻" * 65]}]},
    {"items": [{"term": "自杀", "category": "suicide", "enabled": True}]},
    {"items": [{"term": f"词{n:04d}", "category": "other"} for n in range(1001)]},
    {"entries": EDITED},
    [EDITED],
])
async def test_a_malformed_keyword_list_is_422(api: Api, body: object) -> None:
    status, answer = await api.call("PUT", "/api/crisis-keywords", Role.ADMIN, json=body)
    assert status == 422 and answer["error"] == "invalid body", answer
    assert await api.audit("keywords.replace") == []


# -- who may, and malformed requests ----------------------------------------------------------

async def test_roles(api: Api) -> None:
    task = await add_task(api, "to-call", left_at=NIGHT)
    for role in (Role.SUPERVISOR, Role.DUTY_OFFICER, Role.COUNSELLOR):
        status, body = await api.call("PUT", "/api/crisis-keywords", role,
                                      json={"items": EDITED})
        assert status == 403 and "admin" in body["error"], role
    assert await api.audit("keywords.replace") == []
    for method, path, body in (
            ("GET", "/api/voicemail/messages", None),
            ("GET", "/api/voicemail/messages/1", None),
            ("GET", "/api/voicemail/messages/1/audio", None),
            ("GET", "/api/callbacks", None),
            ("POST", f"/api/callbacks/{task}/assign", {"counsellor_id": None}),
            ("POST", f"/api/callbacks/{task}/outcome", {"outcome": "busy"}),
            ("GET", "/api/crisis-keywords", None),
            ("PUT", "/api/crisis-keywords", {"items": EDITED})):
        status, answer = await api.call(method, path, None, json=body)
        assert status == 401 and answer["error"] == "missing or invalid bearer token", path


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/api/crisis-keywords"),
    ("POST", "/api/callbacks/{task}/assign"),
    ("POST", "/api/callbacks/{task}/outcome"),
])
async def test_a_body_that_is_not_json_is_400(api: Api, method: str, path: str) -> None:
    task = await add_task(api, "to-call", left_at=NIGHT)
    for raw in (b"{not json", b"", "自杀".encode("gbk")):
        status, body = await api.call(method, path.format(task=task), Role.ADMIN, data=raw)
        assert status == 400 and body["error"] == "the body must be a JSON object", raw
    assert (await api.task(task)).outcome is None


async def test_openapi_documents_every_voicemail_route(api: Api) -> None:
    status, document = await api.call("GET", "/api/openapi.json", None)
    assert status == 200
    routes = set()
    for resource in api.client.server.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        for route in resource:
            if path.startswith(("/api/voicemail", "/api/callbacks", "/api/crisis-keywords")) \
                    and route.method != "HEAD":
                routes.add((path, route.method.lower()))
    assert len(routes) == 8
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item}
    assert routes <= documented, routes - documented
    put = document["paths"]["/api/crisis-keywords"]["put"]
    assert {"200", "400", "401", "403", "422"} <= set(put["responses"])
    audio = document["paths"]["/api/voicemail/messages/{message_id}/audio"]["get"]
    assert [p["name"] for p in audio["parameters"]] == ["message_id", "original"]
    assert {"VoicemailOut", "CallbackList", "CrisisKeywordsIn", "OutcomeIn"} <= set(
        document["components"]["schemas"])
