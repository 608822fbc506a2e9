"""What voicemail needs of Asterisk, as protocols: the AMI adapter (ami_listener.connection)
and the live queue view (ami_listener.queue_view) satisfy them; voicemail does not import
them (DESIGN §3), app.py wires the real ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from hotline.ami_protocols import Actions, EventCallback, EventSource

__all__ = ["Actions", "EventCallback", "EventSource"]

class Member(Protocol):
    @property
    def paused(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def status(self) -> str: ...


class Waiting(Protocol):
    @property
    def joined_at(self) -> datetime: ...


class Activity(Protocol):
    @property
    def last_complete_at(self) -> datetime | None: ...


class QueueState(Protocol):
    ready: bool

    @property
    def activity(self) -> Mapping[str, Activity]: ...
    @property
    def members(self) -> Mapping[str, Mapping[str, Member]]: ...
    @property
    def waiting(self) -> Mapping[str, Mapping[str, Waiting]]: ...

    def in_call(self, interface: str) -> bool: ...
