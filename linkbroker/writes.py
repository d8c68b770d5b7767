"""Group commit for the API: writes that arrive together share their commits.

Alone, an API write costs three SQLite commits: its rate-limit allowance, the link,
and the cache entry a running server reads. Each costs more than the work it makes
durable, and writes queue behind each other on one event loop, so with a few
clients writing at once most of a request's time went to commits. Here writes wait
until a turn of the event loop brings no new one, and then run together: one cache
transaction takes every allowance, one SQLite transaction (a savepoint per write)
stores them, and one cache transaction publishes them. Each write still gets its
own answer, its own error included, and only after its commit.

Server workers take turns at the write lock for each batch (turns.py), so that a
worker that finds another one writing wakes as soon as it is done.
"""

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from linkbroker.store import LinkStore

T = TypeVar("T")
# At most this many turns of the event loop pass before a batch runs.
GATHER_TURNS = 8


class _Waiting(Generic[T]):
    """One queued write: whose allowances it takes, what it does, who waits."""

    def __init__(
        self, keys: Sequence[str], work: Callable[[], T], future: asyncio.Future[T]
    ) -> None:
        self.keys, self.work, self.future = keys, work, future
        self.result: tuple[T] | None = None
        self.error: BaseException | None = None

    def settle(self) -> None:
        """Give the waiting request its answer, unless it has gone away."""
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        elif self.result is not None:
            self.future.set_result(self.result[0])


class WriteQueue(Generic[T]):
    """Runs writes in batches, each once the writes stop arriving."""

    def __init__(self, store: LinkStore) -> None:
        self.store = store
        self._waiting: list[_Waiting[T]] = []
        self._seen = self._turns = 0

    async def run(self, keys: Sequence[str], work: Callable[[], T]) -> T:
        """Charge `keys`' rate limits, then run `work` in the next batch.

        Returns what `work` returns once its batch is committed, or raises what it
        raised (RateLimited when an allowance is spent, without running it).
        """
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._gather, loop)
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append(_Waiting(keys, work, future))
        return await future

    def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        # Clients answered together write again at nearly the same moment, but
        # their requests reach the loop over a few turns. Waiting while each turn
        # brings more costs microseconds and saves a batch of commits for each.
        grown = len(self._waiting) > self._seen
        self._seen, self._turns = len(self._waiting), self._turns + 1
        if grown and self._turns < GATHER_TURNS:
            loop.call_soon(self._gather, loop)
            return
        self._seen = self._turns = 0
        self._run_batch()

    def _run_batch(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            with self.store.turns.writing():
                allowed = self._charge(batch)
                with self.store.batch():
                    for write in allowed:
                        self._attempt(write)
        except Exception as exc:  # storage failed: no write of the batch stands
            for write in batch:
                write.error = write.error or exc

        for write in batch:
            write.settle()

    def _charge(self, batch: list[_Waiting[T]]) -> list[_Waiting[T]]:
        writes = [write.keys for write in batch]
        refusals = self.store.cache.charge(writes, self.store.settings)
        for write, refusal in zip(batch, refusals, strict=True):
            write.error = refusal
        return [write for write in batch if write.error is None]

    def _attempt(self, write: _Waiting[T]) -> None:
        try:
            with self.store.step():
                write.result = (write.work(),)
        except Exception as exc:
            write.error = exc
