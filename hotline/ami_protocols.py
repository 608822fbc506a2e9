"""What the capabilities (voicemail/, crisis/) need of an AMI connection, as protocols:
ami_listener.connection.AmiConnection satisfies them, and they do not import it (DESIGN §3);
hotline/app.py wires the real one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from panoramisk.message import Message

EventCallback = Callable[[Message], Awaitable[None]]


class EventSource(Protocol):
    """A reading connection: callbacks per event name (fnmatch patterns)."""

    def subscribe(self, pattern: str, callback: EventCallback) -> None: ...


class Actions(Protocol):
    """A connection that sends actions (the backend's, or the dialler's Originate-only one)."""

    @property
    def connected(self) -> bool: ...

    async def action(self, action: Mapping[str, str | list[str]], *,
                     as_list: bool | None = None) -> Any: ...
