"""The prompt library on SQLite and PostgreSQL: versions, files, audit, the publisher's queries."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hotline.audit import Actor
from hotline.clock import Clock
from hotline.db.engine import session_factory
from hotline.db.models import AuditEntry, PromptVersion, Site
from hotline.prompts import services
from hotline.prompts.services import (
    InvalidInput,
    NotFound,
    PromptLibrary,
    Rejected,
    Upload,
    latest_prompt_versions,
    sounds_for_versions,
)
from hotline.prompts.storage import PromptFiles
from tests.unit.test_prompt_audio import needs_espeak, write_wav

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ADMIN = Actor(username="admin1", role="admin", user_id=7)


@pytest.fixture
async def library(engine, tmp_path: Path) -> PromptLibrary:
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add_all([Site(code="default", name="默认站点"), Site(code="gz", name="广州")])
        await session.commit()
    files = PromptFiles(var_dir=tmp_path / "var", sounds_dir=tmp_path / "sounds")
    return PromptLibrary(sessions=sessions, files=files, clock=Clock(fixed=NOW), max_seconds=60)


def make_upload(tmp_path: Path, name: str = "in.wav", **wav: float) -> Upload:
    path = write_wav(tmp_path / name, **wav)  # type: ignore[arg-type]
    data = path.read_bytes()
    return Upload(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                  filename=name)


async def site_id(library: PromptLibrary, code: str = "default") -> int:
    async with library.sessions() as session:
        return (await session.scalar(select(Site.id).where(Site.code == code))) or 0


async def test_each_upload_is_a_new_version_with_its_own_file(library, tmp_path):
    first = await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path, seconds=1),
                                 description="欢迎语")
    second = await library.upload(ADMIN, "default", "welcome",
                                  make_upload(tmp_path, "b.wav", seconds=2, frequency=660))
    assert (first.row.version, second.row.version) == (1, 2)
    assert first.row.sound == "hotline/sites/default/welcome-v1"
    assert second.row.sound == "hotline/sites/default/welcome-v2"
    sounds = tmp_path / "sounds" / "zh"
    for view in (first, second):
        path = sounds / f"{view.row.sound}.wav"
        with wave.open(str(path), "rb") as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (
                8000, 1, 2)
    # An older version keeps its file: a rule set pinned to it keeps playing it.
    assert (sounds / "hotline/sites/default/welcome-v1.wav").exists()
    assert second.row.duration_ms == pytest.approx(2000, abs=60)
    assert second.row.original_filename == "b.wav"
    assert second.row.created_by == "admin1"
    assert second.row.created_at == NOW
    original = tmp_path / "var/prompts/originals" / f"{second.row.sha256}.wav"
    assert original.read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert not list((sounds / "hotline/sites/default").glob(".staged-*"))

    view = await library.prompt("default", "welcome")
    assert view.prompt.description == "欢迎语"
    assert [v.row.version for v in view.versions] == [1, 2]

    async with library.sessions() as session:
        audits = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [a.action for a in audits] == ["prompt.upload", "prompt.upload"]
    assert audits[1].target == "site:default/prompt:welcome"
    assert audits[1].actor == "admin1" and audits[1].actor_user_id == 7
    assert audits[1].after["version"] == 2
    assert audits[1].after["sound"] == "hotline/sites/default/welcome-v2"


async def test_publisher_queries(library, tmp_path):
    await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path))
    await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path))
    await library.upload(ADMIN, "default", "menu", make_upload(tmp_path))
    await library.upload(ADMIN, "gz", "welcome", make_upload(tmp_path))
    default, gz = await site_id(library), await site_id(library, "gz")
    async with library.sessions() as session:
        assert await latest_prompt_versions(session, default) == {
            "welcome": (2, "hotline/sites/default/welcome-v2"),
            "menu": (1, "hotline/sites/default/menu-v1"),
        }
        assert await latest_prompt_versions(session, gz) == {
            "welcome": (1, "hotline/sites/gz/welcome-v1")}
        pinned = await sounds_for_versions(session, default,
                                           {"welcome": 1, "menu": 1, "gone": 1})
        assert pinned == {"welcome": "hotline/sites/default/welcome-v1",
                          "menu": "hotline/sites/default/menu-v1"}
        assert await sounds_for_versions(session, default, {"welcome": 9}) == {}
        assert await sounds_for_versions(session, default, {}) == {}


async def test_a_rejected_file_leaves_nothing(library, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    upload = Upload(path=text, sha256="0" * 64, size=9, filename="notes.wav")
    with pytest.raises(Rejected, match="not a WAV or MP3 file"):
        await library.upload(ADMIN, "default", "welcome", upload)
    async with library.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PromptVersion)) == 0
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    sounds = tmp_path / "sounds"
    assert not [p for p in sounds.rglob("*") if p.is_file()]
    with pytest.raises(NotFound):
        await library.prompt("default", "welcome")


async def test_a_failing_transaction_takes_the_file_away(library, tmp_path, monkeypatch):
    def broken_audit(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "record_audit", broken_audit)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path))
    async with library.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PromptVersion)) == 0
    assert not [p for p in (tmp_path / "sounds").rglob("*") if p.is_file()]
    assert not list((tmp_path / "var/prompts/originals").glob("*"))


async def test_concurrent_uploads_get_distinct_versions(library, tmp_path):
    uploads = [make_upload(tmp_path, f"{i}.wav", frequency=300 + 100 * i) for i in range(4)]
    views = await asyncio.gather(*(library.upload(ADMIN, "default", "menu", upload)
                                   for upload in uploads))
    assert sorted(v.row.version for v in views) == [1, 2, 3, 4]
    files = sorted((tmp_path / "sounds/zh/hotline/sites/default").glob("menu-v*.wav"))
    assert [f.name for f in files] == [f"menu-v{i}.wav" for i in range(1, 5)]


async def test_names_sites_and_languages_are_checked(library, tmp_path):
    for bad in ("Welcome", "", "a" * 65, "../x", "menu_1"):
        with pytest.raises(InvalidInput, match="invalid prompt name"):
            await library.upload(ADMIN, "default", bad, make_upload(tmp_path))
    with pytest.raises(NotFound, match="no such site"):
        await library.upload(ADMIN, "nowhere", "welcome", make_upload(tmp_path))
    with pytest.raises(NotFound, match="no such site"):
        await library.prompts("../../etc")
    with pytest.raises(InvalidInput, match="invalid language"):
        await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path),
                             language="../en")


async def test_upload_in_another_language_and_download_finds_it(library, tmp_path):
    view = await library.upload(ADMIN, "default", "welcome", make_upload(tmp_path),
                                language="en")
    assert (tmp_path / "sounds/en/hotline/sites/default/welcome-v1.wav").exists()
    found, path = await library.audio_file(ADMIN, "default", "welcome", 1)
    assert path == tmp_path / "sounds/en/hotline/sites/default/welcome-v1.wav"
    assert found.row.sound == view.row.sound
    async with library.sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "prompt.download"))
    assert entry is not None and entry.after == {"version": 1, "sound": view.row.sound}
    with pytest.raises(NotFound, match="no such prompt version"):
        await library.audio_file(ADMIN, "default", "welcome", 2)


@needs_espeak
async def test_generated_from_text(library, tmp_path):
    view = await library.generate(ADMIN, "default", "night", "你好，我们明天给你回电话。")
    assert view.row.source == "tts"
    assert view.row.text == "你好，我们明天给你回电话。"
    assert view.row.original_filename is None
    path = tmp_path / f"sounds/zh/{view.row.sound}.wav"
    assert view.row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    async with library.sessions() as session:
        entry = await session.scalar(select(AuditEntry))
    assert entry is not None and entry.action == "prompt.generate"
    assert entry.after["text"] == "你好，我们明天给你回电话。"
