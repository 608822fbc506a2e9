"""The night attendant's AudioSocket server on a real loopback socket, with a test peer in
Asterisk's place and a scripted recognizer in vosk's: the framing (bad frames too), the
keyword pipeline, and that no failure ends the call (the stream ends or breaks, and the
dialplan goes on)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crisis import audiosocket
from crisis.attendant import NightAttendant, TranscriptWatch
from crisis.audiosocket import KIND_AUDIO, KIND_HANGUP, Message, ProtocolError
from hotline.clock import Clock
from routing.keywords import DEFAULT_KEYWORDS, KeywordList

FRAME = b"\x01\x00" * 160  # 20 ms of 8 kHz audio, not silence


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


# -- framing ---------------------------------------------------------------------------------

async def test_messages_round_trip() -> None:
    data = (audiosocket.uuid_message("2f1d8a3e-5b4c-4d6e-8f70-112233445566")
            + audiosocket.audio(FRAME) + audiosocket.hangup())
    reader = reader_of(data)
    first = await audiosocket.read_message(reader)
    assert audiosocket.call_uuid(first) == "2f1d8a3e-5b4c-4d6e-8f70-112233445566"
    assert await audiosocket.read_message(reader) == Message(KIND_AUDIO, FRAME)
    assert await audiosocket.read_message(reader) == Message(KIND_HANGUP, b"")
    assert await audiosocket.read_message(reader) is None


def test_the_header_is_kind_and_big_endian_length() -> None:
    assert audiosocket.encode(0x10, b"\x00" * 320) == b"\x10\x01\x40" + b"\x00" * 320
    assert audiosocket.hangup() == b"\x00\x00\x00"
    with pytest.raises(ValueError):
        audiosocket.encode(0x100)
    with pytest.raises(ValueError):
        audiosocket.encode(0x10, bytes(0x10000))


@pytest.mark.parametrize("data", [b"\x10", b"\x10\x01", b"\x10\x01\x40" + b"\x00" * 10])
async def test_a_stream_cut_inside_a_message_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        await audiosocket.read_message(reader_of(data))


@pytest.mark.parametrize("message", [None, Message(KIND_AUDIO, FRAME),
                                     Message(audiosocket.KIND_UUID, b"short")])
def test_the_first_message_must_be_the_uuid(message: Message | None) -> None:
    with pytest.raises(ProtocolError):
        audiosocket.call_uuid(message)


# -- the keyword scan over a growing transcript ----------------------------------------------

def test_the_watch_fires_on_a_keyword_in_partial_text() -> None:
    watch = TranscriptWatch(DEFAULT_KEYWORDS)
    assert watch.update("我 最近 不太 好", 1.0) is None
    hit = watch.update("我 最近 不太 好 不想 活 了", 2.0)
    assert hit is not None and {h.canonical for h in hit.hits} == {"自杀"}


def test_the_watch_ignores_near_misses() -> None:
    assert TranscriptWatch(DEFAULT_KEYWORDS).update("跳楼价 甩卖", 1.0) is None


def test_injected_text_joins_after_its_delay_only() -> None:
    watch = TranscriptWatch(DEFAULT_KEYWORDS, inject_text="我想自杀", inject_after_seconds=3.0)
    assert watch.update("안녕하세요", 2.9) is None
    hit = watch.update("안녕하세요", 3.0)
    assert hit is not None and watch.text == "안녕하세요 我想自杀"


# -- the server ------------------------------------------------------------------------------

class ScriptedStream:
    """Returns the script's texts, one per chunk (the last one repeated)."""

    def __init__(self, model: FakeModel) -> None:
        self.model = model
        self.fed = 0

    def feed(self, pcm: bytes) -> str:
        self.model.chunks.append(len(pcm))
        if self.model.fail:
            raise RuntimeError("kaldi broke")
        self.fed += 1
        texts = self.model.texts or [""]
        return texts[min(self.fed, len(texts)) - 1]


@dataclass
class FakeModel:
    texts: list[str] = field(default_factory=list)
    fail: bool = False
    name: str = "fake"
    chunks: list[int] = field(default_factory=list)

    def stream(self) -> ScriptedStream:
        return ScriptedStream(self)


@dataclass
class Answer:
    success: bool


@dataclass
class FakeAmi:
    works: bool = True
    actions: list[dict[str, str]] = field(default_factory=list)

    async def action(self, action: dict[str, str]) -> Any:
        if not self.works:
            raise ConnectionError("AMI down")
        self.actions.append(action)
        return Answer(True)


@dataclass
class FakeJournal:
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, linkedid: str, at: Any, **kwargs: Any) -> str:
        self.records.append((linkedid, kwargs))
        return "call-1"


@dataclass
class Harness:
    attendant: NightAttendant
    model: FakeModel
    ami: FakeAmi
    journal: FakeJournal
    signals: list[dict[str, Any]]

    def expect(self) -> str:
        return self.attendant.expect(channel="PJSIP/carrier-0001", linkedid="1700.1",
                                     call_id="call-1", site="default",
                                     caller_number="13800001111", hit_route="crisis",
                                     queue="crisis", priority=10, node="night-listen")

    async def connect(self, listen_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.attendant.port)
        writer.write(audiosocket.uuid_message(listen_id))
        await writer.drain()
        return reader, writer


async def until_end(reader: asyncio.StreamReader) -> str:
    """What the server did at the end: "hangup" (the dialplan goes on), "closed" (no
    hang-up message) or "broken" (reset: AudioSocket() fails, TryExec carries on)."""
    try:
        while True:
            message = await asyncio.wait_for(audiosocket.read_message(reader), 10)
            if message is None:
                return "closed"
            if message.kind == KIND_HANGUP:
                return "hangup"
    except (ConnectionError, ProtocolError):
        return "broken"


async def speak(writer: asyncio.StreamWriter, frames: int) -> None:
    with contextlib.suppress(ConnectionError):
        for _ in range(frames):
            writer.write(audiosocket.audio(FRAME))
            await writer.drain()
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def harness(*, texts: list[str] | None = None, fail: bool = False, ami_works: bool = True,
                  listen_seconds: float = 5.0, inject: str = "",
                  load: Callable[[Path], Any] | None = None) -> AsyncIterator[Harness]:
    model = FakeModel(texts=texts or [], fail=fail)
    ami, journal, signals = FakeAmi(works=ami_works), FakeJournal(), []

    async def keywords() -> KeywordList:
        return DEFAULT_KEYWORDS

    async def signal(**kwargs: Any) -> None:
        signals.append(kwargs)

    attendant = NightAttendant(
        host="127.0.0.1", port=0, model_dir=Path("/models/fake"), ami=ami, journal=journal,
        clock=Clock(), keywords=keywords, crisis_signal=signal, listen_seconds=listen_seconds,
        load_model=load or (lambda _path: model), inject_text=inject, inject_after_seconds=0.5)
    await attendant.start()
    for _ in range(100):
        if attendant.available:
            break
        await asyncio.sleep(0.01)
    try:
        yield Harness(attendant, model, ami, journal, signals)
    finally:
        await attendant.close()


async def test_a_keyword_marks_the_channel_then_ends_the_stream() -> None:
    async with harness(texts=["我", "我 不想 活 了"]) as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 40)  # 0.8 s: 3 chunks of 0.25 s
        assert await until_end(reader) == "hangup"
        writer.close()
        await asyncio.sleep(0.05)
        assert h.ami.actions == [{"Action": "Setvar", "Channel": "PJSIP/carrier-0001",
                                  "Variable": "HOTLINE_ATTENDANT_RESULT", "Value": "crisis"}]
        assert h.model.chunks[:2] == [13 * 320, 13 * 320]  # 0.25 s or just over, in frames
        [signal] = h.signals
        assert signal["source"] == "keyword" and signal["linkedid"] == "1700.1"
        assert signal["details"]["terms"] == ["自杀"] and signal["details"]["moved"] is True
        assert signal["caller_number"] == "13800001111" and "自杀" in signal["summary"]
        events = {kwargs["event"]: kwargs for _, kwargs in h.journal.records}
        assert events["route"]["route"] == "crisis" and events["route"]["queue"] == "crisis"
        assert events["attendant_listened"]["data"]["outcome"] == "keyword"
        # The caller's words stay out of the record; how much was heard goes in.
        assert "不想" not in str(events["attendant_listened"]["data"])


async def test_without_a_keyword_the_stream_ends_after_the_listening_time() -> None:
    async with harness(texts=["안녕하세요"], listen_seconds=0.6) as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 20)
        assert await until_end(reader) == "hangup"
        writer.close()
        assert h.ami.actions == [] and h.signals == []
        await asyncio.sleep(0.05)
        [(_, record)] = h.journal.records
        assert record["data"]["outcome"] == "ended" and record["data"]["recognised_words"] == 1
        assert record["data"]["frames"] == 20


async def test_silence_is_sent_back_while_listening() -> None:
    async with harness(listen_seconds=1.2) as h:
        reader, writer = await h.connect(h.expect())
        first = await asyncio.wait_for(audiosocket.read_message(reader), 2)
        assert first == Message(KIND_AUDIO, audiosocket.SILENCE_FRAME)
        writer.close()


async def test_injected_text_reaches_the_crisis_route_after_real_audio() -> None:
    async with harness(texts=["안녕"], inject="我想自杀") as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 60)  # 1.2 s; injected after 0.5 s of audio
        assert await until_end(reader) == "hangup"
        writer.close()
        assert h.ami.actions and h.model.chunks  # the audio went through the recognizer
        await asyncio.sleep(0.05)
        assert h.signals[0]["details"]["terms"] == ["自杀"]


async def test_an_unknown_call_is_sent_back_to_the_menu() -> None:
    async with harness() as h:
        reader, writer = await h.connect("2f1d8a3e-5b4c-4d6e-8f70-112233445566")
        assert await until_end(reader) == "hangup"
        writer.close()


@pytest.mark.parametrize("first", [audiosocket.audio(FRAME), b"\x01\x00\x05abcde", b"\x01\x00"])
async def test_a_bad_first_message_breaks_the_stream(first: bytes) -> None:
    async with harness() as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.attendant.port)
        writer.write(first)
        await writer.drain()
        if first == b"\x01\x00":
            writer.write_eof()
        assert await until_end(reader) in ("broken", "closed")
        writer.close()


async def test_a_recognizer_error_ends_the_listening_not_the_call() -> None:
    async with harness(fail=True) as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 20)
        assert await until_end(reader) == "hangup"
        writer.close()
        await asyncio.sleep(0.05)
        assert h.journal.records[0][1]["data"]["outcome"] == "error"


async def test_a_frame_cut_in_half_ends_the_listening() -> None:
    async with harness() as h:
        reader, writer = await h.connect(h.expect())
        writer.write(b"\x10\x01\x40" + FRAME[:100])
        writer.write_eof()
        await until_end(reader)
        writer.close()
        await asyncio.sleep(0.05)
        assert h.journal.records[0][1]["data"]["outcome"] == "error"


async def test_with_ami_down_a_keyword_breaks_the_stream_and_still_signals() -> None:
    async with harness(texts=["自杀"], ami_works=False) as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 20)
        assert await until_end(reader) == "broken"
        writer.close()
        await asyncio.sleep(0.05)
        assert h.signals[0]["details"]["moved"] is False


async def test_a_model_that_fails_to_load_leaves_the_attendant_unavailable() -> None:
    def broken(_path: Path) -> Any:
        raise OSError("no such model")

    async with harness(load=broken) as h:
        assert not h.attendant.available
        assert "could not be loaded" in h.attendant.unavailable


async def test_no_model_means_crisis_by_key() -> None:
    attendant = NightAttendant(
        host="127.0.0.1", port=0, model_dir=None, ami=FakeAmi(), journal=FakeJournal(),
        clock=Clock(), keywords=lambda: asyncio.sleep(0, DEFAULT_KEYWORDS),
        crisis_signal=lambda **_: asyncio.sleep(0))
    await attendant.start()
    assert not attendant.available and attendant.unavailable == "no speech model configured"
    await attendant.close()


async def test_close_ends_streams_in_progress() -> None:
    async with harness(listen_seconds=30) as h:
        reader, writer = await h.connect(h.expect())
        await speak(writer, 5)
        await asyncio.sleep(0.05)
    assert await until_end(reader) in ("closed", "broken", "hangup")
    writer.close()
