#!/usr/bin/env python3
"""Time `linkbroker resolve` from start to exit against a bare Typer app.

The requirement: `linkbroker resolve` starts within 20% of a bare Typer app with the
same number of commands. The bare app is generated in a temporary folder with as
many commands as linkbroker's CLI has, each echoing its one argument. Both run with
this interpreter, warm, many times, in a loop that takes turns between the commands,
so that a machine's drift over the run weighs on both alike; `--hyperfine` times each
command in a block of its own instead. `linkbroker list` is timed too, for
information only: it draws a rich table, so it is expected to start slower.

Run it from the repository root:

    /work/venv/bin/python bench/cli_startup.py            # print the figures
    /work/venv/bin/python bench/cli_startup.py --check    # and exit 1 on FAIL
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SLUG = "bench"
DESTINATION = "https://example.com/"
LIMIT = 1.20


@dataclass(frozen=True)
class Command:
    """One command line to time, under the name the report gives it."""

    name: str
    argv: list[str]


@dataclass(frozen=True)
class Timing:
    """The wall-clock times of one command's runs, in seconds."""

    command: Command
    seconds: list[float]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.seconds) * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def stdev_ms(self) -> float:
        return statistics.stdev(self.seconds) * 1000 if len(self.seconds) > 1 else 0.0

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument(
        "--hyperfine",
        action="store_true",
        help="time each command in its own block with hyperfine",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when resolve is over the limit"
    )
    return parser.parse_args(argv)


def child_environ(folder: Path) -> dict[str, str]:
    """Return the environment every timed run gets, caching bytecode in `folder`."""
    # LINKBROKER_* could point the CLI elsewhere or make it refuse to start.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKBROKER_")}

    # An editable install leaves linkbroker without .pyc files while Typer's came
    # compiled with its wheel; with PYTHONDONTWRITEBYTECODE set, linkbroker would be
    # compiled on every run. A cache prefix in the temporary folder warms both alike
    # and leaves the source tree untouched.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


def count_commands() -> int:
    """Return how many entries `linkbroker --help` lists as commands."""
    from linkbroker.cli import app

    # A sub-app would be listed as one more command, so it counts as one.
    return len(app.registered_commands) + len(app.registered_groups)


def bare_app_source(count: int) -> str:
    """Return the text of a Typer app with `count` commands that echo one argument."""
    # The same Typer settings as linkbroker's app: the comparison is meant to show
    # what linkbroker's own code adds, not what Typer's options cost.
    lines = [
        "import typer",
        "",
        "app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)",
        "",
        "",
        # A callback keeps the app a group of commands even when count is 1.
        "@app.callback()",
        "def main() -> None:",
        '    """A bare app to time Typer\'s own start-up."""',
    ]
    for number in range(1, count + 1):
        lines += [
            "",
            "",
            "@app.command()",
            f"def command{number}(value: str) -> None:",
            "    typer.echo(value)",
        ]
    lines += ["", "", 'if __name__ == "__main__":', "    app()", ""]
    return "\n".join(lines)


def linkbroker_argv(folder: Path, *args: str) -> list[str]:
    """Return the command line running linkbroker on the database in `folder`."""
    return [
        sys.executable,
        "-m",
        "linkbroker",
        "--db",
        str(folder / "links.db"),
        "--cache-dir",
        str(folder / "cache"),
        *args,
    ]


def prepare(folder: Path, count: int) -> list[Command]:
    """Create the database and the bare app in `folder`; return the commands to time."""
    env = child_environ(folder)
    shorten = linkbroker_argv(folder, "shorten", DESTINATION, "--slug", SLUG)
    subprocess.run(shorten, check=True, env=env, stdout=subprocess.DEVNULL)

    bare = folder / "bare_app.py"
    bare.write_text(bare_app_source(count), encoding="utf-8")
    commands = [
        Command("bare Typer app", [sys.executable, str(bare), "command1", SLUG]),
        Command("linkbroker resolve", linkbroker_argv(folder, "resolve", SLUG)),
        Command("linkbroker list", linkbroker_argv(folder, "list")),
    ]

    # One run each before timing: a broken command must not be timed as a fast one.
    for command in commands:
        subprocess.run(command.argv, check=True, env=env, capture_output=True)
    resolved = subprocess.run(
        commands[1].argv, check=True, env=env, capture_output=True, text=True
    )
    if resolved.stdout.strip() != DESTINATION:
        raise RuntimeError(f"resolve printed {resolved.stdout!r}, not {DESTINATION}")
    return commands


def time_with_hyperfine(
    commands: Sequence[Command], runs: int, warmup: int, folder: Path
) -> list[Timing]:
    """Time each command with hyperfine, without a shell in between."""
    export = folder / "hyperfine.json"
    argv = ["hyperfine", "-N", "--style", "basic", "--export-json", str(export)]
    argv += ["--runs", str(runs), "--warmup", str(warmup)]
    for command in commands:
        argv += ["--command-name", command.name, shlex.join(command.argv)]

    # hyperfine's own report goes to stderr, so that stdout holds only the summary.
    subprocess.run(argv, check=True, env=child_environ(folder), stdout=sys.stderr)
    results = json.loads(export.read_text(encoding="utf-8"))["results"]
    return [
        Timing(command, [float(t) for t in result["times"]])
        for command, result in zip(commands, results, strict=True)
    ]


def time_with_loop(
    commands: Sequence[Command], runs: int, warmup: int, folder: Path
) -> list[Timing]:
    """Time each command with a loop of subprocess runs, taking turns."""
    env = child_environ(folder)
    for _ in range(warmup):
        for command in commands:
            run_quietly(command, env)

    # Taking turns spreads any slow spell of the machine over every command alike.
    seconds: dict[str, list[float]] = {command.name: [] for command in commands}
    for _ in range(runs):
        for command in commands:
            seconds[command.name].append(run_quietly(command, env))
    return [Timing(command, seconds[command.name]) for command in commands]


def run_quietly(command: Command, env: Mapping[str, str]) -> float:
    """Run `command` with its output discarded; return how long it took."""
    start = time.perf_counter()
    subprocess.run(command.argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def print_report(timings: Sequence[Timing], count: int, timer: str) -> bool:
    """Print the figures; return whether resolve is within the limit."""
    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]})")
    print(f"timer:       {timer}")
    print(f"commands:    {count} in linkbroker's CLI and in the bare app")
    print()
    print(f"{'':22}{'mean ms':>10}{'± sd':>7}{'median ms':>11}{'min ms':>9}{'runs':>6}")
    for timing in timings:
        print(
            f"{timing.command.name:22}{timing.mean_ms:10.1f}{timing.stdev_ms:7.1f}"
            f"{timing.median_ms:11.1f}{timing.min_ms:9.1f}{len(timing.seconds):6}"
        )

    print()
    bare, resolve, listing = timings
    passed = print_ratio("resolve / bare", resolve, bare, judged=True)
    print_ratio("list / bare", listing, bare, judged=False)
    return passed


def print_ratio(label: str, timing: Timing, bare: Timing, *, judged: bool) -> bool:
    """Print the ratio of `timing` to `bare`; return whether it is within the limit."""
    # Judged by the median: one run slowed by the machine moves the mean, not it.
    ratio = timing.median_ms / bare.median_ms
    passed = ratio <= LIMIT
    verdict = ("PASS" if passed else "FAIL") if judged else "information only"
    print(
        f"{label:16}{ratio:.2f}x by median ({timing.mean_ms / bare.mean_ms:.2f}x by "
        f"mean), limit {LIMIT:.2f}x: {verdict}"
    )
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    count = count_commands()
    hyperfine = shutil.which("hyperfine") if args.hyperfine else None

    with tempfile.TemporaryDirectory(prefix="linkbroker-bench-") as name:
        folder = Path(name)
        commands = prepare(folder, count)
        if hyperfine:
            timings = time_with_hyperfine(commands, args.runs, args.warmup, folder)
            timer = f"hyperfine ({hyperfine})"
        else:
            timings = time_with_loop(commands, args.runs, args.warmup, folder)
            timer = "subprocess loop with time.perf_counter"

    timer += f", {args.warmup} warm-up runs, {args.runs} timed runs each"
    passed = print_report(timings, count, timer)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    raise SystemExit(main())
