"""Owned background tasks: every one is cancelled and awaited on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task this object owns and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def woken_or_timeout(wake: asyncio.Event, seconds: float) -> None:
    """Wait until `wake` is set (a poke) or `seconds` pass (the tick); clear it for the next
    round. The loop of every owned task that works on a tick and on demand."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
    wake.clear()
