"""The prompt library's HTTP API with aiohttp's test server, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hotline.audit import Actor
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, Site
from hotline.prompts import http as prompts_http
from hotline.prompts.services import PromptLibrary
from hotline.prompts.storage import PromptFiles
from hotline.web.auth import ACTOR, json_errors
from tests.unit.test_prompt_audio import needs_espeak, write_wav

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
BASE = "/api/sites/default/prompts"


@web.middleware
async def fake_auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Stands in for bearer_auth: X-Role names the caller's role; no header, no actor."""
    role = request.headers.get("X-Role")
    if role:
        request[ACTOR] = Actor(username=f"{role}-user", role=role, user_id=3)
    return await handler(request)


@pytest.fixture
async def client(engine, tmp_path: Path) -> AsyncIterator[TestClient]:
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Site(code="default", name="默认站点"))
        await session.commit()
    library = PromptLibrary(
        sessions=sessions, clock=Clock(fixed=NOW), max_seconds=30, max_upload_bytes=2_000_000,
        files=PromptFiles(var_dir=tmp_path / "var", sounds_dir=tmp_path / "sounds"))
    app = web.Application(middlewares=[json_errors, fake_auth])
    prompts_http.add_routes(app, library)
    async with TestClient(TestServer(app)) as client:
        yield client


ADMIN = {"X-Role": "admin"}


def wav_bytes(tmp_path: Path, **kwargs: float) -> bytes:
    return write_wav(tmp_path / "upload.wav", **kwargs).read_bytes()  # type: ignore[arg-type]


async def test_upload_raw_wav_then_list_show_and_download(client, tmp_path):
    response = await client.post(f"{BASE}/welcome?description=欢迎语&filename=hello.wav",
                                 data=wav_bytes(tmp_path, seconds=1.2),
                                 headers={**ADMIN, "Content-Type": "audio/wav"})
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["version"] == 1
    assert body["source"] == "upload"
    assert body["sound"] == "hotline/sites/default/welcome-v1"
    assert body["original_filename"] == "hello.wav"
    assert body["created_by"] == "admin-user"
    assert body["audio_url"] == f"{BASE}/welcome/versions/1/audio"
    assert 1100 <= body["duration_ms"] <= 1300

    response = await client.post(f"{BASE}/welcome", data=wav_bytes(tmp_path, seconds=0.6),
                                 headers={**ADMIN, "Content-Type": "audio/x-wav"})
    assert (await response.json())["version"] == 2

    listed = await (await client.get(BASE, headers={"X-Role": "supervisor"})).json()
    assert listed["site"] == "default"
    [item] = listed["items"]
    assert (item["name"], item["description"], item["versions"]) == ("welcome", "欢迎语", 2)
    assert item["latest"]["version"] == 2

    detail = await (await client.get(f"{BASE}/welcome", headers={"X-Role": "supervisor"})).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]

    response = await client.get(f"{BASE}/welcome/versions/1/audio", headers=ADMIN)
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert "welcome-v1.wav" in response.headers["Content-Disposition"]
    with wave.open(io.BytesIO(await response.read()), "rb") as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (
            8000, 1, 2)


async def test_multipart_form_upload(client, tmp_path):
    form = FormData()
    form.add_field("description", "夜间菜单")
    form.add_field("file", wav_bytes(tmp_path), filename="night menu.wav",
                   content_type="audio/wav")
    response = await client.post(f"{BASE}/night-menu", data=form, headers=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["original_filename"] == "night menu.wav"
    detail = await (await client.get(f"{BASE}/night-menu", headers=ADMIN)).json()
    assert detail["description"] == "夜间菜单"


async def test_a_form_without_a_file_is_refused(client):
    form = FormData(default_to_multipart=True)
    form.add_field("description", "x")
    form.add_field("other", "y")
    response = await client.post(f"{BASE}/welcome", data=form, headers=ADMIN)
    assert response.status == 400
    assert (await response.json())["error"] == "the form has no file field"


@needs_espeak
async def test_text_to_speech(client):
    response = await client.post(f"{BASE}/closed", json={"text": "现在不是服务时间。",
                                                         "language": "zh"}, headers=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert (body["source"], body["text"]) == ("tts", "现在不是服务时间。")


async def test_bad_audio_is_a_422_in_the_error_shape(client, tmp_path):
    cases = {
        b"": "the file is empty",
        "这只是文字".encode(): "not a WAV or MP3 file",
        wav_bytes(tmp_path)[:12] + b"\x00\x01" * 30: "the WAV file is damaged or not audio",
        wav_bytes(tmp_path, amplitude=0): "the recording is silent",
        wav_bytes(tmp_path, rate=8000, channels=1, seconds=31): "the recording is too long",
    }
    for data, error in cases.items():
        response = await client.post(f"{BASE}/welcome", data=data,
                                     headers={**ADMIN, "Content-Type": "audio/wav"})
        assert response.status == 422, (error, await response.text())
        body = await response.json()
        assert body["error"] == error
        assert "detail" in body
    listed = await (await client.get(BASE, headers=ADMIN)).json()
    assert listed["items"] == []
    assert not [p for p in (tmp_path / "sounds").rglob("*") if p.is_file()]
    assert not list((tmp_path / "var/prompts/incoming").glob("*"))


async def test_roles_auth_and_request_errors(client, tmp_path):
    data = wav_bytes(tmp_path)
    raw = {"Content-Type": "audio/wav"}
    response = await client.post(f"{BASE}/welcome", data=data,
                                 headers={"X-Role": "supervisor", **raw})
    assert response.status == 403
    assert "admin" in (await response.json())["error"]
    assert (await client.get(BASE)).status == 401
    assert (await client.post(f"{BASE}/Bad_Name", data=data, headers={**ADMIN, **raw})
            ).status == 422
    assert (await client.post("/api/sites/nowhere/prompts/welcome", data=data,
                              headers={**ADMIN, **raw})).status == 404
    response = await client.post(f"{BASE}/welcome", data=b"x",
                                 headers={**ADMIN, "Content-Type": "text/plain"})
    assert response.status == 415
    assert "audio/mpeg" in (await response.json())["detail"]["accepted"]
    response = await client.post(f"{BASE}/welcome", data=b"x" * 2_000_001,
                                 headers={**ADMIN, **raw})
    assert response.status == 413
    response = await client.post(f"{BASE}/welcome", data="{", headers={
        **ADMIN, "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post(f"{BASE}/welcome", json={"text": ""}, headers=ADMIN)
    assert response.status == 422
    response = await client.post(f"{BASE}/welcome", json={"text": "hi", "language": "fr"},
                                 headers=ADMIN)
    assert response.status == 422
    assert (await response.json())["error"] == "no text-to-speech voice for this language"
    assert (await client.get(f"{BASE}/welcome", headers=ADMIN)).status == 404
    await client.post(f"{BASE}/welcome", data=data, headers={**ADMIN, **raw})
    assert (await client.get(f"{BASE}/welcome/versions/1/audio",
                             headers={"X-Role": "counsellor"})).status == 403
    assert (await client.get(f"{BASE}/welcome/versions/9/audio", headers=ADMIN)).status == 404


async def test_writes_and_downloads_are_audited(client, engine, tmp_path):
    await client.post(f"{BASE}/welcome", data=wav_bytes(tmp_path),
                      headers={**ADMIN, "Content-Type": "audio/wav"})
    await client.get(f"{BASE}/welcome/versions/1/audio", headers=ADMIN)
    async with session_factory(engine)() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("prompt.upload", "admin-user", "site:default/prompt:welcome"),
        ("prompt.download", "admin-user", "site:default/prompt:welcome"),
    ]
    assert json.dumps(entries[0].after)  # stored as JSON
    assert entries[0].after["format"] == "wav"


def test_openapi_documents_the_prompt_library():
    from hotline.web.openapi import build_openapi

    document = build_openapi()
    post = document["paths"]["/api/sites/{site}/prompts/{name}"]["post"]
    assert {"audio/wav", "audio/mpeg", "multipart/form-data", "application/json"} <= set(
        post["requestBody"]["content"])
    assert {"201", "403", "413", "415", "422"} <= set(post["responses"])
    assert "/api/sites/{site}/prompts/{name}/versions/{version}/audio" in document["paths"]
    assert {"PromptList", "PromptDetail", "PromptVersionOut", "TextToSpeechIn"} <= set(
        document["components"]["schemas"])
