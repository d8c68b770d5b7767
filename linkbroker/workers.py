"""Several server workers, each listening on a socket of its own on one port.

uvicorn's own supervisor hands every worker the same listening socket, and each
worker accepts what it can: connections that arrive together, such as a reverse
proxy's or a load generator's pool of kept-alive connections, mostly end up in
one worker while the other waits (31 of 32 was common, all 32 not rare). Here
each worker opens its own socket on the port with SO_REUSEPORT, and the kernel
spreads new connections over them evenly.

The supervisor holds the port with a socket that is bound but never listens, so
that the kernel hands it no connection, and so that a worker that dies can be
replaced on the same port. SIGTERM or SIGINT stop every worker gracefully.
"""

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger(__name__)

# Where each worker's socket queues connections not yet accepted, as uvicorn's.
BACKLOG = 2048
# How often the supervisor looks for a worker that died.
WATCH_INTERVAL = 0.5


def available() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port."""
    # Linux balances SO_REUSEPORT sockets; other systems may hand every
    # connection to one of them, which is no better than a shared socket.
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def port_holder(host: str, port: int) -> socket.socket:
    """Bind the port for the workers to share, without listening; raises OSError.

    A port that anything else holds is refused, another linkbroker's workers
    included, although their sockets would let one more share it.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as alone:
        alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        alone.bind((host, port))  # the port 0 asks for becomes a real one here
        port = alone.getsockname()[1]
    holder = _shared_port_socket(host)
    try:
        holder.bind((host, port))
    except OSError:
        holder.close()
        raise
    return holder


class Workers:
    """Runs `count` workers on the holder's port until a signal stops them."""

    def __init__(
        self, config: uvicorn.Config, count: int, holder: socket.socket
    ) -> None:
        self.config, self.count = config, count
        self.host, self.port = holder.getsockname()[:2]
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stopping = threading.Event()

    def run(self) -> bool:
        """Serve until SIGTERM or SIGINT; return False if a worker could not start."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._processes = [self._start() for _ in range(self.count)]
        started = True
        while not self._stopping.wait(WATCH_INTERVAL):
            started = self._replace_the_dead()
            if not started:
                break

        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: a graceful stop
        for process in self._processes:
            process.join()
        return started

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping the workers", signal.Signals(sig).name)
        self._stopping.set()

    def _start(self) -> BaseProcess:
        process = self._context.Process(
            target=_serve, args=(self.config, self.host, self.port)
        )
        process.start()
        return process

    def _replace_the_dead(self) -> bool:
        for index, process in enumerate(self._processes):
            if process.is_alive() or self._stopping.is_set():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It would fail the same way again: the app, or the socket.
                logger.error("worker %d failed to start; stopping", process.pid)
                return False
            logger.warning(
                "worker %d ended with status %s; starting another",
                process.pid,
                process.exitcode,
            )
            self._processes[index] = self._start()
        return True


def _serve(config: uvicorn.Config, host: str, port: int) -> None:
    """Run one worker on a listening socket of its own; in the worker process."""
    config.configure_logging()  # a spawned process starts with none
    sock = _shared_port_socket(host)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        logger.error("cannot listen on %s:%d (%s)", host, port, exc)
        raise SystemExit(STARTUP_FAILURE) from None
    uvicorn.Server(config).run(sockets=[sock])


def _shared_port_socket(host: str) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
