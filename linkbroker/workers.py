"""Several server workers, each accepting from a listening socket of its own.

uvicorn's own supervisor hands every worker the same listening socket, and each
worker accepts what it can: kept-alive connections opened together, such as a
reverse proxy's pool or a load generator's, were split between two workers by
chance, often all but one to the same worker. Here the supervisor opens one socket
a worker on the port with SO_REUSEPORT, and the kernel spreads new connections
over them evenly.

The supervisor keeps the sockets open, so that a worker that dies is replaced on
its socket, and the connections queued there meanwhile wait for the replacement.
SIGTERM, SIGINT and SIGHUP stop every worker gracefully; a worker whose supervisor
is gone stops by itself. Each worker's event loop sends a heartbeat every 2 s; one
that has sent none for the worker timeout is hung (its loop blocked, or the
process stopped), and is killed and replaced like a worker that died.
"""

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger(__name__)

# Where each socket queues connections not yet accepted, as uvicorn's.
BACKLOG = 2048
# How often the supervisor looks for a signal; a worker's death wakes it at once.
WATCH_INTERVAL = 0.5
# Seconds before starting again a worker that died, by how many died in a row soon
# after their start: a worker that keeps failing is not restarted in a busy loop.
RESTART_DELAYS = (0.0, 1.0, 5.0, 30.0)
# A worker that served this long before dying is not counted as failing to start.
SETTLED_AFTER = 30.0
# A worker's event loop beats once more than this many seconds have passed since
# its last beat, on uvicorn's once-a-second tick: every 2 s.
HEARTBEAT = 1
# Seconds a worker's start-up may take on top of the worker timeout.
STARTUP_ALLOWANCE = 60.0
_STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def available() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port."""
    # Linux balances SO_REUSEPORT sockets; other systems may hand every
    # connection to one of them, which is no better than a shared socket.
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """Open `count` listening sockets sharing one port; raises OSError.

    A port that anything else holds is refused, another linkbroker's workers
    included, although their sockets would let these share it.
    """
    # Alone first: SO_REUSEPORT would let these join another server's sockets.
    # SO_REUSEADDR still refuses a listening socket, and lets a restart reuse a
    # port that the connections of a stopped server linger on.
    with socket.socket(_family(host), socket.SOCK_STREAM) as alone:
        alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        alone.bind((host, port))  # the port 0 asks for becomes a real one here
        port = alone.getsockname()[1]
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            opened.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return opened


class _Worker:
    """One worker process on its socket, and what its supervisor knows of it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.process: BaseProcess | None = None
        self.starts = 0
        self.started_at = 0.0
        self.failures = 0  # deaths in a row soon after a start
        self.due: float | None = None  # when to start it again, once it has died
        self.beats: Connection | None = None  # heartbeats from its event loop
        self.last_beat: float | None = None  # None until its first, after start-up


class Workers:
    """Runs a worker on each socket until a signal stops them."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], timeout: float
    ) -> None:
        """Serve `config` on `sockets`; a worker silent for `timeout` s is hung."""
        self.config = config
        self.timeout = timeout
        self._context = multiprocessing.get_context("spawn")
        self._workers = [_Worker(sock) for sock in sockets]
        self._signals: list[int] = []
        # The supervisor holds the sending end open and never sends: a worker
        # reading the other end learns that the supervisor is gone, however it
        # ended, when the read fails.
        self._watched_end, self._held_end = self._context.Pipe(duplex=False)

    def run(self) -> bool:
        """Serve until a stopping signal; return False if the workers cannot start."""
        for sig in _STOPPING_SIGNALS:
            signal.signal(sig, self._note_signal)
        try:
            for worker in self._workers:
                self._start(worker)
            while not self._signals:
                if not self._watch():
                    return False
            logger.info("received %s; stopping", signal.Signals(self._signals[0]).name)
            return True
        finally:
            self._stop_all()

    def _note_signal(self, sig: int, frame: FrameType | None) -> None:
        # Only a note: a handler that took a lock could wait for ever on one that
        # the code it interrupted holds.
        self._signals.append(sig)

    def _start(self, worker: _Worker) -> None:
        if worker.beats is not None:
            worker.beats.close()
        worker.beats, beating = self._context.Pipe(duplex=False)
        worker.process = self._context.Process(
            target=_serve, args=(self.config, worker.sock, self._watched_end, beating)
        )
        worker.process.start()
        beating.close()  # the worker's end
        worker.starts += 1
        worker.started_at = time.monotonic()
        worker.last_beat = None

    def _watch(self) -> bool:
        """Wait a while, replacing dead workers; False if one can never start."""
        running = [process.sentinel for process in self._running()]
        wait(running, timeout=WATCH_INTERVAL)  # wakes as soon as a worker dies
        now = time.monotonic()
        for worker in self._workers:
            if _alive(worker.process) and not self._signals:
                self._check_heartbeat(worker, now)
            if _alive(worker.process) or self._signals:
                continue
            if worker.due is None:
                if not self._note_death(worker, now):
                    return False
            elif now >= worker.due:
                worker.due = None
                self._start(worker)
        return True

    def _check_heartbeat(self, worker: _Worker, now: float) -> None:
        """Kill a worker whose event loop has been silent for the timeout."""
        beats, process = worker.beats, worker.process
        assert beats is not None and process is not None, "a started worker"
        with contextlib.suppress(EOFError, OSError):  # EOF: it is dying anyway
            while beats.poll():
                beats.recv_bytes()
                worker.last_beat = now
        # Start-up (opening the store, starting the click writer) comes before the
        # first heartbeat, and is given longer.
        if worker.last_beat is None:
            silent, limit = now - worker.started_at, self.timeout + STARTUP_ALLOWANCE
        else:
            silent, limit = now - worker.last_beat, self.timeout
        if silent < limit:
            return
        logger.error(
            "worker %d has not answered for %.0f s; ending it", process.pid, silent
        )
        process.kill()
        process.join()

    def _note_death(self, worker: _Worker, now: float) -> bool:
        process = worker.process
        assert process is not None, "only a started worker dies"
        if process.exitcode == STARTUP_FAILURE and worker.starts == 1:
            # A first start fails for what every start would meet (a database it
            # cannot use, say): give up rather than retry.
            logger.error("worker %d failed to start; stopping", process.pid)
            return False
        soon = now - worker.started_at < SETTLED_AFTER
        worker.failures = worker.failures + 1 if soon else 0
        delay = RESTART_DELAYS[min(worker.failures, len(RESTART_DELAYS) - 1)]
        worker.due = now + delay
        logger.warning(
            "worker %d ended with status %s; starting another in %.0f s",
            *(process.pid, process.exitcode, delay),
        )
        return True

    def _stop_all(self) -> None:
        running = self._running()
        for process in running:
            process.terminate()  # SIGTERM: each writes its last clicks and ends
        asked = len(self._signals)
        while any(process.is_alive() for process in running):
            wait([process.sentinel for process in running], timeout=WATCH_INTERVAL)
            if len(self._signals) > max(asked, 1):
                # Asked to stop once more while stopping: do not wait any longer.
                logger.warning("stopping the workers at once")
                for process in running:
                    process.kill()
        for process in running:
            process.join()
        for worker in self._workers:
            worker.sock.close()
            if worker.beats is not None:
                worker.beats.close()
        self._watched_end.close()
        self._held_end.close()

    def _running(self) -> list[BaseProcess]:
        processes = [worker.process for worker in self._workers]
        return [p for p in processes if p is not None and p.is_alive()]


def _alive(process: BaseProcess | None) -> bool:
    return process is not None and process.is_alive()


def _serve(
    config: uvicorn.Config, sock: socket.socket, watched: Connection, beats: Connection
) -> None:
    """Run one worker on its socket; in the worker process."""
    config.configure_logging()  # a spawned process starts with none

    # uvicorn calls this from its event loop's tick, so that a heartbeat proves
    # that the loop itself is turning.
    async def beat() -> None:
        with contextlib.suppress(OSError):
            beats.send_bytes(b".")

    config.callback_notify = beat
    config.timeout_notify = HEARTBEAT
    # A hangup reaches the whole process group from a closed terminal: the
    # supervisor turns it into a graceful stop, sent here as SIGTERM.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    orphaned = threading.Thread(target=_stop_if_orphaned, args=(watched,), daemon=True)
    orphaned.start()
    uvicorn.Server(config).run(sockets=[sock])


def _stop_if_orphaned(watched: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        watched.recv()  # nothing is ever sent: this ends when the supervisor does
    logger.warning("the supervisor is gone; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
