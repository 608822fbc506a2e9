"""An ingested message → audio checked, transcript or its reason, keyword scan, one callback
task; a crisis keyword raises the alert at once. The default rules: open 08:00–22:00 every
day (Asia/Shanghai)."""

from __future__ import annotations

import wave
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.alerts.services import Alerts, AlertView
from hotline.clock import Clock
from hotline.config import ClockSettings
from hotline.db.engine import session_factory
from hotline.db.models import CallbackTask, VoicemailMessage
from hotline.rules.published import RoutingTable
from voicemail.ingest import SpoolIngester
from voicemail.processing import MessageProcessor
from voicemail.spool import spool_file
from voicemail.store import MessageStore
from voicemail.transcription import Transcriber, Transcript

# 23:30 in Shanghai on Sunday 2026-11-29: closed until 08:00 on Monday.
NIGHT = datetime(2026, 11, 29, 15, 30, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
NAME = "20261129T152900Z-1764430140.3-13912345678.wav"


class TextTranscriber(Transcriber):
    """vosk's only packaged model is Korean: Chinese transcripts are given as text (the real
    recognizer is tested in tests/unit/test_voicemail_transcription.py)."""

    def __init__(self, text: str) -> None:
        super().__init__(model_dir=None)
        self.text = text
        self.calls = 0

    async def transcribe(self, path: Path) -> Transcript:
        self.calls += 1
        return Transcript(status="transcribed", text=self.text, reason="", model="stand-in",
                          confidence=0.9, audio_seconds=2.0, processing_seconds=0.1,
                          real_time_factor=0.05)


class Recorded:
    def __init__(self) -> None:
        self.alerts: list[AlertView] = []

    async def notify(self, alert: AlertView) -> None:
        self.alerts.append(alert)


def tone(path: Path, seconds: float = 2.0) -> None:
    import math

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for n in range(int(8000 * seconds)):
        frames += int(8000 * math.sin(2 * math.pi * 440 * n / 8000)).to_bytes(2, "little",
                                                                              signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(frames))


async def setup(engine: AsyncEngine, tmp_path: Path, transcriber: Transcriber, *,
                write: bool = True) -> tuple[MessageProcessor, int, Recorded]:
    sessions = session_factory(engine)
    clock = Clock.from_settings(ClockSettings(fixed=NIGHT))
    store = MessageStore(root=tmp_path / "store")
    path = tmp_path / "spool" / "default" / NAME
    if write:
        tone(path)
    ingester = SpoolIngester(sessions=sessions, clock=clock, store=store,
                             spool_dir=tmp_path / "spool", node="pbx1")
    message = await ingester.ingest(spool_file(tmp_path / "spool", path))
    recorded = Recorded()
    routing = RoutingTable(sessions=sessions, clock=clock, default_site="default",
                           crisis_priority=10)
    processor = MessageProcessor(sessions=sessions, clock=clock, store=store,
                                 transcriber=transcriber, routing=routing,
                                 alerts=Alerts(sessions=sessions, clock=clock,
                                               notifiers=[recorded]), node="node-a")
    return processor, message, recorded


async def load(engine: AsyncEngine, message: int) -> tuple[VoicemailMessage, list[CallbackTask]]:
    async with session_factory(engine)() as session:
        row = await session.get_one(VoicemailMessage, message)
        tasks = list(await session.scalars(select(CallbackTask)))
        return row, tasks


async def test_without_a_model_the_message_flows_untranscribed_with_a_callback_next_morning(
        engine: AsyncEngine, tmp_path: Path) -> None:
    processor, message, recorded = await setup(engine, tmp_path, Transcriber(model_dir=None))
    assert await processor.process(message)
    row, tasks = await load(engine, message)
    assert row.audio == "ok" and row.web_path and (tmp_path / "store" / row.web_path).exists()
    assert row.transcription == "untranscribed" and "model" in row.transcription_reason
    assert row.processed_at == NIGHT and not row.urgent
    [task] = tasks
    assert task.message_id == message and task.number == "13912345678"
    assert task.untranscribed and not task.urgent
    assert task.due_at == NEXT_MORNING and task.next_attempt_at == NEXT_MORNING
    # The end of the first service day after the message: Monday 22:00 in Shanghai.
    assert task.deadline_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert recorded.alerts == []


async def test_a_crisis_keyword_makes_the_message_urgent_due_now_and_raises_the_alert(
        engine: AsyncEngine, tmp_path: Path) -> None:
    processor, message, recorded = await setup(engine, tmp_path,
                                               TextTranscriber("我 真的 不想 活 了 救救 我"))
    assert await processor.process(message)
    row, [task] = await load(engine, message)
    assert row.urgent and row.transcript == "我 真的 不想 活 了 救救 我"
    assert [hit["canonical"] for hit in row.keyword_hits] == ["自杀"]
    assert task.urgent and task.due_at == NIGHT and not task.untranscribed
    [alert] = recorded.alerts
    assert alert.kind == "crisis_keyword" and alert.severity == "critical"
    assert "13912345678" in alert.summary and "自杀" in alert.summary


async def test_a_near_miss_is_not_urgent(engine: AsyncEngine, tmp_path: Path) -> None:
    processor, message, recorded = await setup(engine, tmp_path,
                                               TextTranscriber("我 今天 不想 活动 了"))
    assert await processor.process(message)
    row, [task] = await load(engine, message)
    assert not row.urgent and not task.urgent and task.due_at == NEXT_MORNING
    assert recorded.alerts == []


async def test_a_broken_file_is_marked_and_still_gets_its_callback(
        engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "spool" / "default" / NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")  # cut off inside the header
    transcriber = TextTranscriber("不会被调用")
    processor, message, _ = await setup(engine, tmp_path, transcriber, write=False)
    assert await processor.process(message)
    row, [task] = await load(engine, message)
    assert row.audio == "broken" and row.audio_reason
    assert row.transcription == "untranscribed" and transcriber.calls == 0
    assert task.untranscribed and task.due_at == NEXT_MORNING


async def test_processing_twice_or_on_two_nodes_makes_one_task(
        engine: AsyncEngine, tmp_path: Path) -> None:
    processor, message, recorded = await setup(engine, tmp_path, TextTranscriber("割腕"))
    other = MessageProcessor(sessions=session_factory(engine), clock=processor._clock,
                             store=processor._store, transcriber=TextTranscriber("割腕"),
                             routing=processor._routing, alerts=processor._alerts,
                             node="node-b")
    assert await processor._claim_message(message)
    assert not await other.process(message)  # node-a holds it
    assert await processor.process(message)
    assert not await processor.process(message)  # done already
    _, tasks = await load(engine, message)
    assert len(tasks) == 1 and len(recorded.alerts) == 1
    assert await processor.unprocessed() == []


async def test_transcribed_again_with_a_model_an_urgent_message_no_longer_waits(
        engine: AsyncEngine, tmp_path: Path) -> None:
    processor, message, recorded = await setup(engine, tmp_path, Transcriber(model_dir=None))
    assert await processor.process(message)
    _, [task] = await load(engine, message)
    assert task.due_at == NEXT_MORNING and task.untranscribed
    # A model configured since: `hotline voicemail backlog --retranscribe`.
    processor._transcriber = TextTranscriber("我 不想 活 了")
    assert await processor.retranscribe() == [message]
    assert await processor.unprocessed() == [message]
    assert await processor.process(message)
    row, [task] = await load(engine, message)
    assert row.urgent and row.transcription == "transcribed"
    assert task.urgent and not task.untranscribed and task.due_at == NIGHT
    assert task.next_attempt_at == NIGHT
    assert [alert.kind for alert in recorded.alerts] == ["crisis_keyword"]


async def test_the_running_processor_takes_the_backlog_and_new_messages(
        engine: AsyncEngine, tmp_path: Path) -> None:
    import asyncio

    processor, first, _ = await setup(engine, tmp_path, Transcriber(model_dir=None))
    store = processor._store
    ingester = SpoolIngester(sessions=session_factory(engine), clock=processor._clock,
                             store=store, spool_dir=tmp_path / "spool", node="pbx1",
                             on_ingested=processor.enqueue)
    await processor.start()
    try:
        later = []
        for n in range(3):
            name = f"20261129T15300{n}Z-1764430200.{n}-1391234500{n}.wav"
            path = tmp_path / "spool" / "default" / name
            tone(path, 1.0)
            later.append(await ingester.ingest(spool_file(tmp_path / "spool", path)))
        async with asyncio.timeout(30):
            while await processor.unprocessed():  # noqa: ASYNC110 - polling the database
                await asyncio.sleep(0.05)
    finally:
        await processor.close()
    _, tasks = await load(engine, first)
    assert sorted(t.message_id for t in tasks) == sorted([first, *later])
    assert processor.failures == 0


async def test_with_incidents_a_crisis_keyword_opens_the_incident_and_its_one_alert(
        engine: AsyncEngine, tmp_path: Path) -> None:
    from crisis.incidents import Incidents

    processor, message, recorded = await setup(engine, tmp_path, TextTranscriber("我 想 自杀"))
    incidents = Incidents(sessions=session_factory(engine), clock=processor._clock,
                          alerts=processor._alerts)
    processor._crisis_signal = incidents.signal
    assert await processor.process(message)
    [incident], total = await incidents.list()
    assert total == 1 and incident.source == "voicemail_keyword"
    assert (incident.message_id, incident.caller_number) == (message, "13912345678")
    assert "自杀" in incident.summary
    # One alert: the incident's (not a voicemail alert as well).
    [alert] = recorded.alerts
    assert (alert.kind, alert.incident_id) == ("crisis", incident.id)
    assert "13912345678" in alert.summary
