"""Click limits, counted exactly across every worker without blocking the loop.

A link with a click limit must stop at exactly its limit, however many workers
serve it at once and however long the click flush waits. So each human redirect of
such a link takes one click from its allowance in SQLite itself, atomically, before
it is answered. That write may wait on another process's lock, so it runs in a
thread of its own: the event loop keeps serving while it waits. Links without a
limit never come here.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from linkbroker.settings import Settings
from linkbroker.store import LinkStore


class ClickLimits:
    """Takes clicks from links' allowances in one thread with its own connection."""

    def __init__(self, settings: Settings) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="click-limits")
        # Touched only from the executor's one thread, where its connection opens
        # on first use: sqlite3 connections stay in the thread that made them.
        self._store = LinkStore(settings, autocheckpoint=False)

    async def take(self, slug: str) -> bool:
        """Take one click from `slug`'s allowance; return whether one was left."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._store.take_click, slug)

    async def left(self, slug: str) -> bool:
        """Return whether `slug` has a click left, without taking it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._store.has_clicks_left, slug
        )

    def close(self) -> None:
        """Finish the work in hand, then close the connection."""
        self._executor.submit(self._store.close).result()
        self._executor.shutdown()
