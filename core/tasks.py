"""Ending background asyncio tasks: cancel them, then wait until each has really finished.

Services (the gateway's publisher, feeds and readers, the control room's follower)
start loops with `asyncio.create_task` and end them on shutdown. A task that is only
cancelled may still be running its `finally` when the service closes the client it
uses, so `stop` waits for each; what a task raised while ending is of no interest
then (it is being stopped), and is not re-raised.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None]) -> None:
    """Cancel every task given (None is skipped), then wait for each to end."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
