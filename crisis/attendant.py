"""The night attendant listens: live crisis keywords in a caller's speech.

At night the attendant asks the caller to say what is happening (the `listen` node of the
rules). The dialplan streams the caller's audio here with Asterisk's AudioSocket
(crisis/audiosocket.py); a vosk recognizer turns it into text as it arrives and
routing/keywords.py scans it. On a crisis keyword the caller's channel gets
HOTLINE_ATTENDANT_RESULT=crisis (AMI Setvar), the stream is ended, and the dialplan sends
the caller to the crisis route at once; then the crisis signal opens an incident (which
alerts the duty officer). Without a keyword the stream is ended after
`listen_seconds` and the caller goes back to the menu.

EAGI would need a script per call on the Asterisk host loading the model each time; here
the model is loaded once per process at start, and each call gets its own recognizer fed
in worker threads (Kaldi is native code: never on the event loop).

Nothing here may drop a caller: a malformed stream, an unknown call, a recognizer error
or AMI down end the listening (or break the stream, which the dialplan's TryExec() turns
into the menu that offers crisis by key) and are logged; the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from crisis import audiosocket
from crisis.audiosocket import KIND_AUDIO, KIND_ERROR, KIND_HANGUP, ProtocolError
from hotline.clock import Clock
from hotline.tasks import cancel_and_wait
from routing.keywords import DEFAULT_KEYWORDS, KeywordList, ScanResult, scan

log = structlog.get_logger(__name__)

#: Audio handed to the recognizer at once: 0.25 s (vosk's examples use about that).
CHUNK_BYTES = audiosocket.SAMPLE_RATE * 2 // 4
#: After the hang-up message, how long Asterisk gets to read it and close its side (closing
#: first, with its audio still unread, would reset the connection before it reads it).
CLOSE_WAIT_SECONDS = 2.0
#: How often silence is sent back: AudioSocket() gives up after 2 s without activity
#: either way, and a caller's phone may send nothing while they are silent.
KEEPALIVE_SECONDS = 0.5
RESULT_VARIABLE = "HOTLINE_ATTENDANT_RESULT"

CrisisSignal = Callable[..., Awaitable[object]]


class AmiActions(Protocol):
    async def action(self, action: dict[str, str]) -> Any: ...


class Journal(Protocol):
    def record(self, linkedid: str, at: Any, **kwargs: Any) -> str: ...


class SpeechStream(Protocol):
    def feed(self, pcm: bytes) -> str:
        """Take signed linear 8 kHz audio; all the text recognised so far in this call."""


class SpeechModel(Protocol):
    name: str

    def stream(self) -> SpeechStream: ...


class VoskStream:
    """One call's KaldiRecognizer: finished utterances and the one in progress."""

    def __init__(self, recognizer: Any) -> None:
        self._recognizer = recognizer
        self._final: list[str] = []
        self._partial = ""

    def feed(self, pcm: bytes) -> str:
        # True at an endpoint (a pause): that utterance is final.
        if self._recognizer.AcceptWaveform(pcm):
            text = json.loads(self._recognizer.Result()).get("text", "")
            if text:
                self._final.append(text)
            self._partial = ""
        else:
            self._partial = json.loads(self._recognizer.PartialResult()).get("partial", "")
        return " ".join([*self._final, self._partial]).strip()


class VoskModel:
    """A vosk model, loaded once; each call gets a recognizer at the phone's 8 kHz (Kaldi
    resamples to the model's own rate)."""

    def __init__(self, model: Any, name: str) -> None:
        self._model = model
        self.name = name

    @classmethod
    def load(cls, directory: Path) -> VoskModel:
        """Blocking (seconds, hundreds of MB): run it in a thread."""
        import vosk

        from voicemail.transcription import model_name

        vosk.SetLogLevel(-1)
        return cls(vosk.Model(str(directory)), model_name(directory))

    def stream(self) -> SpeechStream:
        import vosk

        return VoskStream(vosk.KaldiRecognizer(self._model, audiosocket.SAMPLE_RATE))


@dataclass(frozen=True)
class Listening:
    """A call the IVR sent to the attendant, expected on the AudioSocket by its id."""

    listen_id: str
    channel: str
    linkedid: str
    call_id: str
    site: str
    caller_number: str
    # Where a keyword sends the caller: the crisis route (or oncall) and its queue.
    hit_route: str
    queue: str
    priority: int
    node: str


@dataclass
class TranscriptWatch:
    """The keyword scan over a call's growing transcript. Pure.

    `inject_text` (tests only: a Chinese keyword the packaged Korean model never says) is
    added to the recognizer's output once `inject_after_seconds` of audio were heard."""

    keywords: KeywordList
    inject_text: str = ""
    inject_after_seconds: float = 3.0
    text: str = ""

    def update(self, recognised: str, heard_seconds: float) -> ScanResult | None:
        """The scan of the transcript so far, when it holds a keyword."""
        text = recognised
        if self.inject_text and heard_seconds >= self.inject_after_seconds:
            text = f"{recognised} {self.inject_text}".strip()
        if text == self.text:
            return None
        self.text = text
        result = scan(self.keywords, text)
        return result if result.urgent else None


@dataclass
class CallStats:
    frames: int = 0
    audio_bytes: int = 0
    chunks: int = 0
    recognised: str = ""
    outcome: str = "ended"
    error: str = ""
    terms: list[str] = field(default_factory=list)

    @property
    def heard_seconds(self) -> float:
        return self.audio_bytes / (audiosocket.SAMPLE_RATE * 2)

    def as_dict(self) -> dict[str, Any]:
        # The words themselves stay out of the record (a caller's speech); how much was
        # heard and recognised, and which keywords, go in.
        return {"outcome": self.outcome, "frames": self.frames,
                "heard_seconds": round(self.heard_seconds, 2), "chunks": self.chunks,
                "recognised_words": len(self.recognised.split()), "terms": self.terms,
                **({"error": self.error} if self.error else {})}


class AttendantMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.streams = Counter("hotline_attendant_streams", "Callers the night attendant "
                               "listened to, by outcome", ["outcome"], registry=registry)
        self.frames = Counter("hotline_attendant_audio_frames",
                              "AudioSocket audio frames received", registry=registry)
        self.chunks = Counter("hotline_attendant_recognizer_chunks",
                              "Audio chunks the recognizer took", registry=registry)
        self.words = Counter("hotline_attendant_recognised_words",
                             "Words the recognizer returned (finished streams)",
                             registry=registry)
        self.available = Gauge("hotline_attendant_available", "1 while the night attendant "
                               "can listen (model loaded, server up)", registry=registry)


class NightAttendant:
    """The AudioSocket server and the recognizers: start() loads the model and listens on
    `host:port` (loopback: the protocol has no authentication); close() ends every stream."""

    def __init__(self, *, host: str, port: int, model_dir: Path | None, ami: AmiActions,
                 journal: Journal, clock: Clock,
                 keywords: Callable[[], Awaitable[KeywordList]],
                 crisis_signal: CrisisSignal,
                 listen_seconds: float = 30.0, threads: int = 2, enabled: bool = True,
                 load_model: Callable[[Path], SpeechModel] = VoskModel.load,
                 registry: CollectorRegistry | None = None, inject_text: str = "",
                 inject_after_seconds: float = 3.0, expect_seconds: float = 120.0) -> None:
        self.host, self.port = host, port
        self.model_dir = model_dir
        self.listen_seconds = listen_seconds
        self._ami = ami
        self._journal = journal
        self._clock = clock
        self._keywords = keywords
        self._crisis_signal = crisis_signal
        self._enabled = enabled
        self._load_model = load_model
        self._inject_text = inject_text
        self._inject_after = inject_after_seconds
        self._expect_seconds = expect_seconds
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads),
                                            thread_name_prefix="attendant")
        self._model: SpeechModel | None = None
        self._server: asyncio.Server | None = None
        self._expected: dict[str, tuple[float, Listening]] = {}
        self._streams: set[asyncio.Task[Any]] = set()
        self._loading: asyncio.Task[None] | None = None
        self.metrics = AttendantMetrics(registry)
        self.unavailable = "not started"

    @property
    def available(self) -> bool:
        """Whether a caller can be listened to now (else the IVR offers crisis by key)."""
        return self._model is not None and self._server is not None

    def expect(self, *, channel: str, linkedid: str, call_id: str, site: str,
               caller_number: str, hit_route: str, queue: str, priority: int,
               node: str) -> str:
        """Register a call the IVR is sending to listen; its AudioSocket id."""
        now = time.monotonic()
        for key in [k for k, (at, _) in self._expected.items() if now - at > self._expect_seconds]:
            del self._expected[key]
        listen_id = str(uuid.uuid4())
        self._expected[listen_id] = (now, Listening(
            listen_id=listen_id, channel=channel, linkedid=linkedid, call_id=call_id, site=site,
            caller_number=caller_number, hit_route=hit_route, queue=queue, priority=priority,
            node=node))
        return listen_id

    async def start(self) -> None:
        """Listen on the port, and load the model in the background (seconds): calls meanwhile
        get the crisis option by key."""
        if not self._enabled:
            self.unavailable = "the night attendant is switched off"
        elif self.model_dir is None:
            self.unavailable = "no speech model configured"
        if self.unavailable != "not started":
            log.warning("night attendant not listening: crisis by key instead",
                        reason=self.unavailable)
            return
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0: the one chosen
        self.unavailable = "loading the speech model"
        self._loading = asyncio.create_task(self._load(), name="attendant-model")

    async def _load(self) -> None:
        assert self.model_dir is not None
        try:
            self._model = await asyncio.to_thread(self._load_model, self.model_dir)
        except Exception as error:  # native code and imports: anything may come out
            self.unavailable = f"the speech model could not be loaded: {error!r}"
            log.error("night attendant not listening: crisis by key instead",
                      reason=self.unavailable)
            return
        self.unavailable = ""
        self.metrics.available.set(1)
        log.info("night attendant listening", host=self.host, port=self.port,
                 model=self._model.name)

    async def close(self) -> None:
        self.metrics.available.set(0)
        await cancel_and_wait(self._loading)
        self._loading = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    # -- one call ------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await self.serve(reader, writer)
        except asyncio.CancelledError:
            # close() at shutdown: the stream just ends (asyncio would log a cancelled
            # connection handler as an error); the dialplan goes on.
            log.info("attendant stream ended by shutdown")
        finally:
            self._streams.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One AudioSocket connection, from the UUID to the end of the listening."""
        try:
            async with asyncio.timeout(5):
                listen_id = audiosocket.call_uuid(await audiosocket.read_message(reader))
        except (ProtocolError, TimeoutError, OSError) as error:
            log.warning("attendant stream refused", error=str(error) or repr(error))
            self.metrics.streams.labels("error").inc()
            _break(writer)
            return
        expected = self._expected.pop(listen_id, None)
        model = self._model
        if expected is None or model is None:
            # Not sent here by this process's IVR (a restart in between): back to the menu.
            log.warning("attendant stream for an unknown call", listen_id=listen_id)
            self.metrics.streams.labels("unknown").inc()
            await _end(reader, writer)
            return
        call = expected[1]
        stats = CallStats()
        keepalive = asyncio.create_task(_keep_alive(writer), name="attendant-keepalive")
        try:
            hit = await self._listen(call, model, reader, stats)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await keepalive
        moved = False
        if hit is not None:
            stats.outcome = "keyword"
            stats.terms = sorted({h.canonical for h in hit.hits})
            moved = await self._move_to_crisis(call, reader, writer)
        elif not writer.is_closing():
            await _end(reader, writer)
        self._finished(call, stats)
        if hit is not None:
            await self._signal(call, stats, moved)

    async def _listen(self, call: Listening, model: SpeechModel,
                      reader: asyncio.StreamReader, stats: CallStats) -> ScanResult | None:
        loop = asyncio.get_running_loop()
        try:
            keywords = await self._keywords()
        except Exception:
            log.exception("keyword list not read; the defaults listen")
            keywords = DEFAULT_KEYWORDS
        watch = TranscriptWatch(keywords, self._inject_text, self._inject_after)
        buffer = bytearray()
        stream: SpeechStream | None = None
        try:
            async with asyncio.timeout(self.listen_seconds):
                stream = await loop.run_in_executor(self._executor, model.stream)
                while True:
                    message = await audiosocket.read_message(reader)
                    if message is None or message.kind == KIND_HANGUP:
                        stats.outcome = "hangup"
                        return None
                    if message.kind == KIND_ERROR:
                        stats.outcome, stats.error = "error", message.payload.hex()
                        return None
                    if message.kind != KIND_AUDIO:
                        continue  # DTMF and kinds of later versions: not ours to act on
                    stats.frames += 1
                    stats.audio_bytes += len(message.payload)
                    self.metrics.frames.inc()
                    buffer += message.payload
                    if len(buffer) < CHUNK_BYTES:
                        continue
                    chunk, buffer = bytes(buffer), bytearray()
                    stats.recognised = await loop.run_in_executor(self._executor,
                                                                  stream.feed, chunk)
                    stats.chunks += 1
                    self.metrics.chunks.inc()
                    hit = watch.update(stats.recognised, stats.heard_seconds)
                    if hit is not None:
                        return hit
        except TimeoutError:
            return None  # listened long enough: back to the menu
        except (ProtocolError, OSError) as error:
            stats.outcome, stats.error = "error", str(error)
            log.warning("attendant stream broken", call_id=call.call_id, error=str(error))
            return None
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the recognizer (native code): the call goes on
            stats.outcome, stats.error = "error", repr(error)
            log.exception("attendant recognizer failed", call_id=call.call_id)
            return None

    async def _move_to_crisis(self, call: Listening, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> bool:
        """Mark the channel, then end the stream: the dialplan reads the mark at once. With
        AMI down, break the stream instead: the dialplan's failure path is the menu that
        offers crisis by key."""
        try:
            answer = await self._ami.action({"Action": "Setvar", "Channel": call.channel,
                                             "Variable": RESULT_VARIABLE, "Value": "crisis"})
            ok = bool(getattr(answer, "success", False))
        except Exception as error:
            log.error("attendant could not mark the call for the crisis route",
                      call_id=call.call_id, error=repr(error))
            ok = False
        if not ok:
            _break(writer)
            return False
        await _end(reader, writer)
        return True

    def _finished(self, call: Listening, stats: CallStats) -> None:
        self.metrics.streams.labels(stats.outcome).inc()
        self.metrics.words.inc(len(stats.recognised.split()))
        now = self._clock.now()
        log.info("attendant stream ended", call_id=call.call_id, **stats.as_dict())
        self._journal.record(call.linkedid, now, event="attendant_listened", source="attendant",
                             data=stats.as_dict())

    async def _signal(self, call: Listening, stats: CallStats, moved: bool) -> None:
        terms = "、".join(stats.terms)
        if moved:
            # The call's route as the dialplan now takes it (the record shows the crisis).
            self._journal.record(
                call.linkedid, self._clock.now(), event="route", source="attendant",
                data={"route": call.hit_route, "queue": call.queue, "priority": call.priority,
                      "reason": "keyword", "node": call.node, "terms": stats.terms},
                route=call.hit_route, queue=call.queue, priority=call.priority)
        try:
            await self._crisis_signal(
                source="keyword", site=call.site, linkedid=call.linkedid, call_id=call.call_id,
                caller_number=call.caller_number or None,
                summary=f"夜间值守听到危机关键词（{terms}）" + ("" if moved else
                                                      "，未能转入危机线路"),
                details={"terms": stats.terms, "via": "night_attendant", "moved": moved,
                         "heard_seconds": round(stats.heard_seconds, 2)})
        except Exception:
            log.exception("attendant keyword not signalled", call_id=call.call_id)


async def _end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The hang-up message: Asterisk's AudioSocket() returns 0 and the dialplan goes on.
    Its audio is read (and dropped) until it closes its side."""
    with contextlib.suppress(OSError, TimeoutError):
        writer.write(audiosocket.hangup())
        await writer.drain()
        async with asyncio.timeout(CLOSE_WAIT_SECONDS):
            while await reader.read(65536):
                pass


def _break(writer: asyncio.StreamWriter) -> None:
    """Reset the connection: Asterisk's AudioSocket() fails, and the dialplan's TryExec()
    takes its failure path (the menu offering crisis by key)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _keep_alive(writer: asyncio.StreamWriter) -> None:
    frame = audiosocket.audio(audiosocket.SILENCE_FRAME)
    with contextlib.suppress(OSError):
        while not writer.is_closing():
            writer.write(frame)
            await writer.drain()
            await asyncio.sleep(KEEPALIVE_SECONDS)
