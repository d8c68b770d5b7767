"""Click events: recorded in memory on the request path, stored by a writer process.

One UPDATE with its own commit costs more than serving the redirect, so the request
path only appends a tuple to a list. Every few hundred clicks the list is encoded
into one frame and handed, without waiting, to a writer process of this worker's
own (clickwriter.py), which classifies, sums and writes the clicks in one
transaction every flush interval. The worker keeps each frame until the writer
confirms it as written, so a writer that dies loses nothing: another is started
and sent the same frames. A graceful stop hands everything over and waits for the
writer to write it.

The writer works at a low priority, pausing often, so that it never keeps a busy
worker waiting; on a machine busy for long, it may fall behind. A worker then holds
at most HELD_BATCHES flush batches it has not seen confirmed: past that, redirects
wait for the writer to catch up, rather than memory growing without end. They
never wait for a writer that is not running, whose writes fail, or that has
confirmed nothing for STALLED_AFTER seconds.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from linkbroker import clickwriter
from linkbroker.clickdb import ClickWriter, RawClick, client_address
from linkbroker.errors import StorageError
from linkbroker.settings import Settings

__all__ = ["ClickRecorder", "RawClick", "client_address"]

logger = logging.getLogger(__name__)

# Clicks per frame. Encoding this many holds the event loop for some tens of
# microseconds, small against a request; a second of heavy traffic is about a
# hundred frames, each one write to a pipe.
HANDOFF = 256
# Seconds to wait before each new try at starting a writer that did not start.
RESTART_DELAYS = (0.0, 1.0, 5.0, 30.0)
# Flush batches of unconfirmed clicks a worker holds before its requests wait.
HELD_BATCHES = 4
# At most this often, a worker says that its requests wait for the writer.
BEHIND_LOG_INTERVAL = 60.0
# Seconds requests wait for a writer that confirms nothing meanwhile (stopped, or
# blocked behind a stopped process's lock) before they go on without it.
STALLED_AFTER = 5.0


class ClickRecorder:
    """Collects clicks on the event loop and streams them to a writer process."""

    def __init__(
        self, settings: Settings, also_checkpoint: Sequence[Path] = ()
    ) -> None:
        self.settings = settings
        module = clickwriter.__name__
        self._argv = [sys.executable, "-m", module, *map(str, also_checkpoint)]
        self._pending: list[RawClick] = []
        # Frames sent and not yet confirmed as written, in order, with their sizes.
        self._unconfirmed: dict[int, tuple[bytes, int]] = {}
        self._in_flight = 0
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._closing = False
        self.written = 0
        # Set while the writer is too far behind: requests wait for `room`.
        self.full = False
        self._room = asyncio.Event()
        self._room.set()
        self._held_most = HELD_BATCHES * settings.flush_batch + HANDOFF
        # False once the writer's last commit failed, or it confirmed nothing
        # for STALLED_AFTER while requests waited: waiting would not help then.
        self._writing = True
        self._confirmations = 0
        self._said_behind = -BEHIND_LOG_INTERVAL

    async def start(self) -> None:
        """Start the writer process; raise StorageError if it cannot start."""
        self._process = await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    def record(self, click: RawClick) -> bool:
        """Keep a click for the writer; return True if the request must wait.

        Call it from the event loop only; a request told to wait awaits `room`.
        """
        self._pending.append(click)
        if len(self._pending) >= HANDOFF:
            self._hand_off(commit=False)
        return self.full

    async def room(self) -> None:
        """Return once the writer has caught up, or no writer runs to wait for."""
        await self._room.wait()

    def pending(self) -> int:
        """Return how many clicks are not yet confirmed as written."""
        return len(self._pending) + self._in_flight

    def writer_pid(self) -> int | None:
        """Return the process id of the running writer, if one runs."""
        return None if self._process is None else self._process.pid

    async def run(self) -> None:
        """Ask for a commit every interval until stopped, then drain the writer."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.settings.flush_interval
                )
            if not self._stopping:
                await self.flush()
        await self._close_writer()

    def stop(self) -> None:
        """Ask `run` to hand everything over, wait for the writer and return."""
        self._stopping = True
        self._make_room()
        self._wake.set()

    async def flush(self) -> int:
        """Hand the pending clicks over, ask for a commit; return how many it wrote.

        Returns 0 at once when no writer runs: the clicks wait for the next one.
        """
        seq = self._hand_off(commit=True)
        if self._process is None:
            return 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        return await future

    def flush_now(self) -> int:
        """Write every unconfirmed click in this process; for a stopping server.

        Only for when the writer process could not write them: call it once `run`
        has returned, so that no writer runs any more.
        """
        batch = [
            click
            for frame, _ in self._unconfirmed.values()
            for click in clickwriter.decode_frame(frame)
        ]
        batch += self._pending
        writer = ClickWriter(self.settings)
        try:
            count = writer.write(batch)
        finally:
            writer.close()
        self._unconfirmed.clear()
        self._pending, self._in_flight = [], 0
        self.written += count
        return count

    def close(self) -> None:
        """End the writer process if it still runs; stop and flush first."""
        if self._process is not None and self._process.returncode is None:
            logger.warning("ending the click writer (pid %d)", self._process.pid)
            self._process.kill()

    def _hand_off(self, commit: bool) -> int:
        self._seq += 1
        clicks, self._pending = self._pending, []
        frame = clickwriter.encode(self._seq, clicks, commit)
        self._unconfirmed[self._seq] = (frame, len(clicks))
        self._in_flight += len(clicks)
        if self._process is not None:
            _send(self._process, frame)
            behind = self._in_flight >= self._held_most
            if behind and self._writing and not self._stopping:
                self._wait_for_writer()
        return self._seq

    def _wait_for_writer(self) -> None:
        if not self.full:
            self.full = True
            self._room.clear()
            loop = asyncio.get_running_loop()
            loop.call_later(STALLED_AFTER, self._unless_confirmed, self._confirmations)
        now = time.monotonic()
        if now - self._said_behind >= BEHIND_LOG_INTERVAL:
            self._said_behind = now
            logger.warning(
                "the click writer is %d clicks behind; redirects wait for it",
                self._in_flight,
            )

    def _unless_confirmed(self, confirmations: int) -> None:
        if self.full and self._confirmations == confirmations:
            logger.error(
                "the click writer has confirmed nothing for %.0f s; redirects go on "
                "and %d clicks wait in memory",
                *(STALLED_AFTER, self.pending()),
            )
            self._writing = False
            self._make_room()

    def _make_room(self) -> None:
        self.full = False
        self._room.set()

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self.settings.environ()},
        )
        assert process.stdout is not None, "asked for a pipe"
        if await process.stdout.readline() != clickwriter.READY:
            status = await process.wait()
            raise StorageError(
                f"The click writer exited with status {status} before it was ready; "
                "its message above says why.",
                status,
            )
        logger.info("click writer started (pid %d)", process.pid)
        return process

    async def _supervise(self) -> None:
        while self._process is not None:
            process = self._process
            await self._read_replies(process)
            status = await process.wait()
            if self._closing:
                return
            self._process = None
            self._make_room()  # clicks wait in memory for the next writer
            logger.error(
                "the click writer (pid %d) exited with status %s; starting another "
                "for the %d clicks it had not confirmed",
                *(process.pid, status, self.pending()),
            )
            self._settle(self._seq, 0)
            await self._restart()

    async def _restart(self) -> None:
        for attempt in itertools.count():
            await asyncio.sleep(RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)])
            try:
                process = await self._spawn()
            except (OSError, StorageError) as exc:
                logger.error(
                    "could not start a click writer (%s); %d clicks wait in memory",
                    *(exc, self.pending()),
                )
                continue
            # A frame the dead writer had written but not yet confirmed is written
            # again: the only way a click can count twice, and only in that instant.
            for frame, _ in self._unconfirmed.values():
                _send(process, frame)
            self._process = process
            return

    async def _read_replies(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None, "asked for a pipe"
        while line := await process.stdout.readline():
            word, through, *rest = line.split()
            if word == b"ok":
                written = int(rest[0])
                self.written += written
                self._writing = True
                self._confirmations += 1
                self._confirm(int(through))
                self._settle(int(through), written)
            else:
                # Waiting would not help a writer whose writes fail (a full disk,
                # say): redirects go on, and the clicks wait in memory.
                self._writing = False
                self._make_room()
                self._settle(int(through), 0)

    def _confirm(self, through: int) -> None:
        while self._unconfirmed:
            seq = next(iter(self._unconfirmed))
            if seq > through:
                break
            _, count = self._unconfirmed.pop(seq)
            self._in_flight -= count
        if self.full and self._in_flight < self._held_most // 2:
            self._make_room()

    def _settle(self, through: int, written: int) -> None:
        for seq in [seq for seq in self._waiting if seq <= through]:
            future = self._waiting.pop(seq)
            if not future.done():
                future.set_result(written)

    async def _close_writer(self) -> None:
        if self._closing:
            return
        self._hand_off(commit=True)
        self._closing = True
        process, supervisor = self._process, self._supervisor
        if process is None or supervisor is None:
            # Between two writers: the shutdown writes what is left in process.
            if supervisor is not None:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            return
        await _end_input(process)
        await supervisor
        self._settle(self._seq, 0)
        if process.returncode != 0:
            logger.error(
                "the click writer (pid %d) stopped with status %s",
                *(process.pid, process.returncode),
            )


def _send(process: asyncio.subprocess.Process, frame: bytes) -> None:
    # Never waits: the pipe's transport keeps what the writer has not read yet. A
    # writer that died is noticed by the supervisor, which sends the frame again.
    stdin = process.stdin
    if stdin is not None and not stdin.is_closing():
        stdin.write(frame)


async def _end_input(process: asyncio.subprocess.Process) -> None:
    # End of input tells the writer to write what it holds and exit. Everything
    # buffered goes out first: closing a pipe may drop what it still holds.
    stdin = process.stdin
    assert stdin is not None, "asked for a pipe"
    stdin.transport.set_write_buffer_limits(high=0)
    with contextlib.suppress(ConnectionError):
        await stdin.drain()
    stdin.close()
