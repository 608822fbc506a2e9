"""Asterisk's AudioSocket protocol (app_audiosocket, res_audiosocket): framing only.

A TCP stream of messages, each one byte of kind, two bytes of payload length (big-endian)
and the payload. Asterisk connects, sends the call's UUID (0x01, 16 bytes), then the
channel's audio (0x10: signed linear 16-bit, 8 kHz, mono, usually 20 ms = 320 bytes per
message). The server may send audio back the same way, and ends the stream with a hang-up
message (0x00, no payload): Asterisk's AudioSocket() then returns 0 and the dialplan goes
on. 0xff carries an error code. A stream that breaks off makes AudioSocket() fail, which
the dialplan's TryExec() turns into TRYSTATUS=FAILED instead of hanging up the caller.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF

HEADER_BYTES = 3
MAX_PAYLOAD = 0xFFFF
SAMPLE_RATE = 8000
#: One 20 ms frame of signed linear 16-bit audio at 8 kHz.
FRAME_BYTES = SAMPLE_RATE * 2 // 50
SILENCE_FRAME = bytes(FRAME_BYTES)


class ProtocolError(Exception):
    """The peer broke the framing: a truncated message, or a first message that is not the
    call's UUID."""


@dataclass(frozen=True)
class Message:
    kind: int
    payload: bytes = b""


def encode(kind: int, payload: bytes = b"") -> bytes:
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"message kind {kind} is not one byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def hangup() -> bytes:
    return encode(KIND_HANGUP)


def audio(pcm: bytes) -> bytes:
    return encode(KIND_AUDIO, pcm)


def uuid_message(value: str | uuid.UUID) -> bytes:
    """The first message Asterisk sends (for tests and peers that play Asterisk)."""
    return encode(KIND_UUID, uuid.UUID(str(value)).bytes)


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message; None when the peer closed the stream between two messages.
    Raises ProtocolError when it closed in the middle of one."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise ProtocolError(f"stream ended inside a header ({len(error.partial)} of 3 bytes)"
                            ) from None
    kind, length = header[0], int.from_bytes(header[1:3], "big")
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as error:
        raise ProtocolError(f"stream ended inside a message of kind {kind:#04x} "
                            f"({len(error.partial)} of {length} bytes)") from None
    return Message(kind, payload)


def call_uuid(message: Message | None) -> str:
    """The call's UUID from the first message, as the dialplan wrote it (lower case)."""
    if message is None:
        raise ProtocolError("stream ended before the call's UUID")
    if message.kind != KIND_UUID:
        raise ProtocolError(f"first message is of kind {message.kind:#04x}, not the UUID")
    if len(message.payload) != 16:
        raise ProtocolError(f"UUID of {len(message.payload)} bytes, not 16")
    return str(uuid.UUID(bytes=message.payload))
