"""AmiConnection's event dispatch through `replay` (no network): callbacks matched per event
name once, in subscription order, and a later subscription taking effect from the next
event on."""

from __future__ import annotations

import asyncio

import pytest
from panoramisk.message import Message

from ami_listener.connection import AmiConnection


def event(name: str, uid: str = "1") -> Message:
    return Message({"Event": name, "Uniqueid": uid})


def connection() -> AmiConnection:
    return AmiConnection(host="127.0.0.1", port=1, username="u", secret="s")


async def test_callbacks_run_in_subscription_order_whatever_the_pattern() -> None:
    conn = connection()
    seen: list[str] = []

    async def later(message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(f"async {message['Event']}")

    conn.subscribe("Queue*", lambda m: seen.append(f"glob {m['Event']}"))
    conn.subscribe("QueueCallerJoin", later)
    conn.subscribe("*", lambda m: seen.append(f"all {m['Event']}"))
    count = await conn.replay([event("QueueCallerJoin"), event("Hangup"),
                               event("QueueCallerJoin", "2")], per_read=2)
    assert count == 3
    assert seen == ["glob QueueCallerJoin", "async QueueCallerJoin", "all QueueCallerJoin",
                    "all Hangup",
                    "glob QueueCallerJoin", "async QueueCallerJoin", "all QueueCallerJoin"]


async def test_a_subscription_made_while_handling_counts_from_the_next_event() -> None:
    conn = connection()
    seen: list[str] = []

    def first(message: Message) -> None:
        seen.append(f"first {message['Uniqueid']}")
        if message["Uniqueid"] == "1":
            conn.subscribe("Hangup", lambda m: seen.append(f"second {m['Uniqueid']}"))

    conn.subscribe("Hangup", first)
    await conn.replay([event("Hangup", "1"), event("Hangup", "2")])
    assert seen == ["first 1", "first 2", "second 2"]


async def test_names_are_matched_case_sensitively_and_a_failing_callback_is_skipped() -> None:
    conn = connection()
    seen: list[str] = []

    def broken(_message: Message) -> None:
        raise RuntimeError("boom")

    conn.subscribe("hangup", lambda m: seen.append("lower"))
    conn.subscribe("Hangup", broken)
    conn.subscribe("Hangup", lambda m: seen.append("after the broken one"))
    await conn.replay([event("Hangup")])
    assert seen == ["after the broken one"]


async def test_replay_needs_a_connection_that_is_not_started() -> None:
    conn = AmiConnection(host="127.0.0.1", port=1, username="u", secret="s",
                         reconnect_min=5, reconnect_max=5)
    await conn.start()
    try:
        with pytest.raises(RuntimeError):
            await conn.replay([event("Hangup")])
    finally:
        await conn.close()
