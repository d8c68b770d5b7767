"""Real processes sharing one database and one cache folder."""

import multiprocessing
import os
import subprocess
import sys
from multiprocessing.connection import Connection

from linkbroker.settings import Settings
from linkbroker.store import LinkStore

PROCESSES = 6
LINKS_EACH = 40
SPAWN = multiprocessing.get_context("spawn")


def _cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "linkbroker", *args],
        env={**os.environ, **settings.environ()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_one_custom_slug_raced_by_many_processes_has_one_winner(
    settings: Settings,
) -> None:
    racers = [
        _cli(settings, "shorten", f"https://racer{n}.example/", "--slug", "prize")
        for n in range(PROCESSES)
    ]
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        results.append((racer.returncode, out, err))

    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1, results
    assert all(code == 1 and "'prize' is taken" in err for code, _, err in losers), (
        losers
    )
    assert all("Traceback" not in err for _, _, err in results)
    with LinkStore(settings) as store:
        assert store.count() == 1
        assert store.require("prize").destination.startswith("https://racer")


def _create_many(settings: Settings, worker: int, out: Connection) -> None:
    with LinkStore(settings) as store:
        made = [
            store.create(f"https://w{worker}.example/{n}").slug
            for n in range(LINKS_EACH)
        ]
    out.send(made)


def test_generated_slugs_from_many_processes_are_all_kept(settings: Settings) -> None:
    settings = Settings.load(
        db_path=settings.db_path,
        cache_dir=settings.cache_dir,
        environ={"LINKBROKER_SLUG_LENGTH": "4"},
    )
    pipes = [SPAWN.Pipe(duplex=False) for _ in range(PROCESSES)]
    workers = [
        SPAWN.Process(target=_create_many, args=(settings, n, sender))
        for n, (_, sender) in enumerate(pipes)
    ]
    for worker in workers:
        worker.start()
    made = [slug for receiver, _ in pipes for slug in receiver.recv()]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    assert len(made) == PROCESSES * LINKS_EACH
    assert len(set(made)) == len(made)
    with LinkStore(settings) as store:
        assert store.count() == len(made)
        assert {link.slug for link in store.newest()} == set(made)


def _resolver(settings: Settings, commands: Connection) -> None:
    with LinkStore(settings) as store:
        while (slug := commands.recv()) is not None:
            target = store.resolve(slug)
            commands.send(None if target is None else target.destination)


def test_delete_is_seen_at_once_by_a_process_that_had_the_link_cached(
    settings: Settings,
) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/cached", "hot")

    ours, theirs = SPAWN.Pipe()
    other = SPAWN.Process(target=_resolver, args=(settings, theirs))
    other.start()
    try:
        ours.send("hot")
        assert ours.recv() == "https://example.com/cached"

        deleter = _cli(settings, "delete", "hot", "--yes")
        deleter.communicate(timeout=60)
        assert deleter.returncode == 0

        ours.send("hot")
        assert ours.recv() is None
    finally:
        ours.send(None)
        other.join(timeout=60)
