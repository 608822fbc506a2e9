"""QueueMemberSync's passes: one per poke by default; with `min_pass_interval`, pokes that
come sooner after a pass coalesce into the next one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from ami_listener.queue_members import QueueMemberSync
from ami_listener.queue_view import QueueView
from hotline.clock import Clock

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


class EmptyRoster:
    """Nobody on duty: every pass plans nothing, and is counted."""

    state = SimpleNamespace(loaded=True, queues={})

    def desired(self, *_: Any) -> dict[str, Any]:
        return {}

    def counsellor(self, _interface: str) -> None:
        return None


def member_sync(min_pass_interval: float) -> QueueMemberSync:
    clock = Clock(fixed=NOW)
    view = QueueView(clock=clock)
    view.ready = True
    ami = SimpleNamespace(connected=True, on_connected=[], on_disconnected=[])
    return QueueMemberSync(ami=cast(Any, ami), view=view, roster=cast(Any, EmptyRoster()),
                           clock=clock, tick_seconds=60, min_pass_interval=min_pass_interval)


async def poke_four_times(sync: QueueMemberSync, *, then_wait: float = 0.1) -> int:
    """Poke at 0, 50, 100 and 150 ms; the passes made by `then_wait` after the last."""
    await sync.start()
    try:
        for _ in range(4):
            sync.poke()
            await asyncio.sleep(0.05)
        await asyncio.sleep(then_wait)
        return sync.passes
    finally:
        await sync.close()


async def test_a_pass_per_poke_by_default() -> None:
    assert await poke_four_times(member_sync(0.0)) == 4


async def test_pokes_soon_after_a_pass_coalesce_into_the_next() -> None:
    # the first poke passes at once; the three within 0.4 s of it wait for one more pass
    assert await poke_four_times(member_sync(0.4), then_wait=0.05) == 1
    assert await poke_four_times(member_sync(0.4), then_wait=0.6) == 2
