#!/usr/bin/env python3
"""The bare app served as linkbroker serves: its own socket for each worker.

uvicorn's supervisor hands every worker one shared socket, and the kernel leaves
kept-alive connections opened together wherever they land, often all but one on
the same worker; linkbroker gives each worker a socket of its own and the kernel
spreads connections evenly. Run this way, the bare app differs from linkbroker in
nothing but the app.

Run by serve_load.py: python bench/bare_serve.py --workers N
"""

import argparse
import logging
import sys

import uvicorn

from linkbroker import workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    # bare_app is found beside this file, which is first on the path of every
    # worker too: a spawned process inherits its parent's.
    config = uvicorn.Config(
        "bare_app:app",
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
    sockets = workers.listening_sockets("127.0.0.1", 0, args.workers)
    port = sockets[0].getsockname()[1]
    print(f"serving http://127.0.0.1:{port}", flush=True)
    return 0 if workers.Workers(config, sockets, timeout=30.0).run() else 1


if __name__ == "__main__":
    sys.exit(main())
