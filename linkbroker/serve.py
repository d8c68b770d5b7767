"""The server's entry point, `python -m linkbroker.serve`, run by `linkbroker serve`.

It is a module of its own so that a worker process imports only what serving needs:
uvicorn spawns workers by importing the main module again, and this one pulls in
neither Typer nor rich. The settings arrive as LINKBROKER_* variables.
"""

import argparse
import copy
import logging
import os
import signal
import sys
from types import FrameType

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from linkbroker import workers
from linkbroker.errors import LinkbrokerError
from linkbroker.settings import Settings

logger = logging.getLogger("linkbroker.serve")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line that `linkbroker serve` builds."""
    parser = argparse.ArgumentParser(prog="linkbroker serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", action="store_true")
    return parser.parse_args(argv)


def log_config() -> dict[str, object]:
    """Return uvicorn's logging setup with linkbroker's loggers added to it."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["linkbroker"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def uvicorn_config(args: argparse.Namespace) -> uvicorn.Config:
    """Return the uvicorn settings every worker runs under."""
    return uvicorn.Config(
        "linkbroker.server:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=args.access_log,
        log_config=log_config(),
        server_header=False,
        # uvicorn would otherwise take X-Forwarded-For from any local peer and put
        # it in place of the peer's address, before linkbroker's own setting, which
        # alone decides whose forwarded address counts.
        proxy_headers=False,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then flush every click and return 0.

    Returns 1, having served nothing, when the settings, the port or the workers'
    start-up fail.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config = uvicorn_config(args)
    try:
        settings = Settings.load()
    except LinkbrokerError as exc:
        logger.error("%s", exc)
        return 1

    balanced = args.workers > 1 and workers.available()
    try:
        if balanced:
            sockets = workers.listening_sockets(args.host, args.port, args.workers)
        else:
            sockets = [config.bind_socket()]
    except (OSError, SystemExit) as exc:
        # uvicorn has logged the system's reason; an OSError carries its own.
        reason = f" ({exc.strerror})" if isinstance(exc, OSError) else ""
        logger.error(
            "cannot listen on %s:%d%s; stop what uses it or choose another --port",
            *(args.host, args.port, reason),
        )
        return 1
    host, port = sockets[0].getsockname()[:2]
    logger.info(
        "serving http://%s:%d with %d worker%s; database %s, cache %s",
        *(host, port, args.workers, "s" * (args.workers != 1)),
        *(settings.db_path, settings.cache_dir),
    )

    if balanced:
        if not workers.Workers(config, sockets, settings.worker_timeout).run():
            return 1
    else:
        _stop_gracefully_on_signals()
        if args.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uvicorn.Server(config).run(sockets=sockets)
    logger.info("stopped")
    return 0


def _stop_gracefully_on_signals() -> None:
    # After its graceful shutdown uvicorn raises the signal it caught again, so that
    # the default handler would end the process by that signal. With these handlers
    # in place the re-raised signal is a no-op and `serve` exits with status 0.
    def ignore(sig: int, frame: FrameType | None) -> None:
        return None

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)

    # uvicorn stops gracefully on SIGTERM and SIGINT only; a hangup, from a closed
    # terminal, would end the process with its clicks unwritten.
    def hang_up(sig: int, frame: FrameType | None) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGHUP, hang_up)


if __name__ == "__main__":
    raise SystemExit(main())
