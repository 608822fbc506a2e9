"""Spool → message rows: exactly once across restarts and two backend nodes."""

from __future__ import annotations

import asyncio
import os
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import Clock
from hotline.config import ClockSettings
from hotline.db.engine import session_factory
from hotline.db.models import VoicemailMessage, call_id_for
from voicemail.ingest import SpoolIngester
from voicemail.spool import announced_path, spool_file
from voicemail.store import MessageStore

NAME = "20261129T150102Z-1764428462.17-13800138000.wav"


def write_wav(path: Path, seconds: float = 1.0) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(int(8000 * seconds) * 2))
    return path.read_bytes()


def ingester(engine: AsyncEngine, tmp_path: Path, *, store: str = "store",
             seen: list[int] | None = None) -> SpoolIngester:
    clock = Clock.from_settings(ClockSettings())
    return SpoolIngester(sessions=session_factory(engine), clock=clock,
                         store=MessageStore(root=tmp_path / store), spool_dir=tmp_path / "spool",
                         node="pbx1", settle_seconds=0.0,
                         on_ingested=seen.append if seen is not None else None)


async def count(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return int(await session.scalar(select(func.count(VoicemailMessage.id))) or 0)


async def test_a_recording_becomes_one_row_the_original_is_kept_and_the_spool_emptied(
        engine: AsyncEngine, tmp_path: Path) -> None:
    audio = write_wav(tmp_path / "spool" / "default" / NAME)
    seen: list[int] = []
    vm = ingester(engine, tmp_path, seen=seen)
    assert await vm.scan_once() == 0  # first sight: not settled yet
    assert await vm.scan_once() == 1
    assert not (tmp_path / "spool" / "default" / NAME).exists()
    async with session_factory(engine)() as session:
        row = (await session.scalars(select(VoicemailMessage))).one()
    assert seen == [row.id]
    assert row.site_code == "default" and row.caller_number == "13800138000"
    assert row.linkedid == "1764428462.17"
    assert row.call_id == call_id_for("pbx1", "1764428462.17")
    assert row.recorded_at == datetime(2026, 11, 29, 15, 1, 2, tzinfo=UTC)
    assert (tmp_path / "store" / row.original_path).read_bytes() == audio
    assert row.size_bytes == len(audio)


async def test_a_restart_after_the_insert_but_before_the_removal_neither_loses_nor_duplicates(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "default" / NAME
    write_wav(path)
    first = ingester(engine, tmp_path)
    message = await first.ingest(spool_file(tmp_path / "spool", path))
    # As if the process died before unlinking: the file is back in the spool.
    write_wav(path)
    again = ingester(engine, tmp_path)
    again.announce(path)
    assert await again.scan_once() == 1
    assert await count(engine) == 1
    assert again.ingested == 0 and not path.exists()
    write_wav(path)
    assert await again.ingest(spool_file(tmp_path / "spool", path)) == message
    assert await count(engine) == 1


async def test_two_nodes_taking_the_same_file_make_one_message(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "default" / NAME
    write_wav(path)
    file = spool_file(tmp_path / "spool", path)
    seen: list[int] = []
    a, b = (ingester(engine, tmp_path, store=f"store-{n}", seen=seen) for n in "ab")
    ids = await asyncio.gather(a.ingest(file), b.ingest(file), return_exceptions=True)
    ok = [i for i in ids if isinstance(i, int)]
    assert ok and len(set(ok)) == 1, ids
    assert await count(engine) == 1
    assert len(seen) == 1


async def test_a_name_the_dialplan_did_not_write_is_still_a_message(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "other-site" / "message from a USB stick.wav"
    write_wav(path)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    vm = ingester(engine, tmp_path)
    vm.announce(path)
    assert await vm.scan_once() == 1
    async with session_factory(engine)() as session:
        row = (await session.scalars(select(VoicemailMessage))).one()
    assert row.site_code == "other-site" and row.caller_number is None
    assert row.recorded_at == datetime.fromtimestamp(1_700_000_000, UTC)


async def test_an_unreadable_file_stays_in_the_spool_for_the_next_scan(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "default" / NAME
    write_wav(path)
    path.chmod(0)
    vm = ingester(engine, tmp_path)
    vm.announce(path)
    if os.access(path, os.R_OK):  # root reads anything: make the store unwritable instead
        path.chmod(0o644)
        (tmp_path / "store").mkdir()
        (tmp_path / "store" / "originals").write_text("not a directory")
    assert await vm.scan_once() == 0
    assert vm.failures == 1 and path.exists() and await count(engine) == 0


@pytest.mark.parametrize("announced", [
    "/var/spool/asterisk/hotline-voicemail/../../../etc/passwd",
    "/etc/passwd",
    "/var/spool/asterisk/hotline-voicemail",
])
def test_an_announced_path_outside_the_spool_is_not_trusted(announced: str,
                                                             tmp_path: Path) -> None:
    assert announced_path(tmp_path, "/var/spool/asterisk/hotline-voicemail", announced) is None


def test_an_announced_path_maps_into_the_spool_as_this_process_sees_it(tmp_path: Path) -> None:
    assert announced_path(tmp_path, "/var/spool/asterisk/hotline-voicemail/",
                          f"/var/spool/asterisk/hotline-voicemail/default/{NAME}") == \
        tmp_path / "default" / NAME


def test_half_written_copies_a_killed_process_left_are_swept(tmp_path: Path) -> None:
    store = MessageStore(root=tmp_path)
    (tmp_path / "originals" / "default").mkdir(parents=True)
    (tmp_path / "originals" / "default" / ".incoming-x1y2").write_bytes(b"RIFF")
    (tmp_path / "originals" / "default" / NAME).write_bytes(b"RIFF")
    assert store.sweep_incoming() == 1
    assert [p.name for p in (tmp_path / "originals" / "default").iterdir()] == [NAME]


def test_a_recording_whose_header_asterisk_has_not_closed_is_not_taken_until_stale(
        tmp_path: Path) -> None:
    """A phone that suppresses silence sends nothing: Record() writes nothing while it still
    records. Only the completed header (written on close) says the file is finished."""
    from voicemail.spool import SettleWatch, wav_header_complete

    path = tmp_path / NAME
    audio = write_wav(path)
    open_header = audio[:4] + bytes(4) + audio[8:40] + bytes(4) + audio[44:]
    path.write_bytes(open_header)
    assert not wav_header_complete(path, len(open_header))
    watch = SettleWatch(settle_seconds=3, stale_seconds=600)
    assert watch.finished([path], now=0.0) == []
    assert watch.finished([path], now=100.0) == []  # unchanged, but still recording
    assert watch.finished([path], now=601.0) == [path]  # Asterisk died mid-recording
    path.write_bytes(audio)  # closed: sizes written
    assert wav_header_complete(path, len(audio))
    watch = SettleWatch(settle_seconds=3, stale_seconds=600)
    assert watch.finished([path], now=0.0) == []
    assert watch.finished([path], now=3.0) == [path]


async def test_an_announced_recording_still_open_is_left_for_the_scans(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "default" / NAME
    audio = write_wav(path)
    path.write_bytes(audio[:4] + bytes(4) + audio[8:])
    vm = ingester(engine, tmp_path)
    vm.announce(path)
    assert await vm.scan_once() == 0 and path.exists()
