"""Turns at SQLite's write lock, so that a bulk writer lets waiting writers in.

A writer that finds the database locked sleeps in SQLite's busy handler and tries
again, at intervals that grow to 100 ms. A bulk writer (an import) that commits one
chunk and begins the next at once leaves the lock free for a few microseconds, so
such a writer could wait for the whole import. Writers that must not wait long, the
click flush above all, hold a shared lock on a file beside the database while they
wait and write. Between two chunks a bulk writer takes that file's exclusive lock,
which it gets only once nobody is waiting, and lets it go at once: each waiting
writer gets its turn within one chunk and one interval of its busy handler.

Writers that take turns also queue for one another on a second file's exclusive
lock, rather than in the busy handler: one that finds another writing sleeps in the
kernel and wakes the moment it is done, where the busy handler would have slept for
up to 100 ms. Two server workers writing at once meet here.

A writer holds its turn only while it writes, and the kernel takes it back from a
process that dies. A bulk writer gives way for a second at most: Linux grants
shared locks while an exclusive one waits, so writers that keep overlapping could
hold it back for as long as they write.

Where the operating system has no `flock` (Windows), writers rely on the busy
handler alone.
"""

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

# A bulk writer waits this long at most for the writers it lets in.
GIVE_WAY_MOST = 1.0
# Its tries at the lock start this often and slow to this, in seconds.
RETRY_FIRST = 0.0001
RETRY_MOST = 0.005


class Turns:
    """The turns files of one database, opened on first use."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + "-turns")
        self.queue_path = db_path.with_name(db_path.name + "-writer")
        self._fds: dict[Path, int] = {}
        self._unusable = sys.platform == "win32"

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Run the block as a writer that takes turns: waiting, then alone."""
        with self.waiting(), self._held(self.queue_path, shared=False):
            yield

    def waiting(self) -> AbstractContextManager[None]:
        """Mark the block as a writer's wait and write, for bulk writers to let in."""
        return self._held(self.path, shared=True)

    def give_way(self) -> None:
        """Return once no writer waits, or after a second; call it between writes."""
        fd = self._file(self.path)
        if fd is not None and _lock(fd, shared=False, within=GIVE_WAY_MOST):
            _unlock(fd)

    def close(self) -> None:
        """Close the files; the files themselves stay for the next process."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    @contextmanager
    def _held(self, path: Path, *, shared: bool) -> Iterator[None]:
        fd = self._file(path)
        if fd is None:
            yield
            return
        # Blocking, to wake the moment the lock is free: polling at 0.1 ms cost
        # two workers writing at once a tenth of their throughput.
        _lock(fd, shared=shared, within=None)
        try:
            yield
        finally:
            _unlock(fd)

    def _file(self, path: Path) -> int | None:
        if path not in self._fds and not self._unusable:
            try:
                self._fds[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                # A folder that takes the database's WAL takes these files too;
                # should it not, writers are only slower to get their turn.
                logger.warning("cannot open %s (%s); writers take no turns", path, exc)
                self._unusable = True
        return self._fds.get(path)


if sys.platform != "win32":
    import fcntl

    def _lock(fd: int, *, shared: bool, within: float | None) -> bool:
        """Take the lock; with `within`, give up after that many seconds."""
        kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if within is None:
            fcntl.flock(fd, kind)
            return True
        kind |= fcntl.LOCK_NB
        deadline, pause = time.monotonic() + within, RETRY_FIRST
        while True:
            try:
                fcntl.flock(fd, kind)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MOST)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # never called: the file is unusable there

    def _lock(fd: int, *, shared: bool, within: float | None) -> bool:
        raise NotImplementedError

    def _unlock(fd: int) -> None:
        raise NotImplementedError
