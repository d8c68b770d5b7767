"""A progress bar for long commands: drawn on a terminal, silent when piped."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# (phase, done, total): a phase names what is counted, such as "read" or "write".
Report = Callable[[str, int, int], None]

_TITLES = {
    "read": "Reading and checking",
    "write": "Writing",
    "export": "Exporting",
}


@contextmanager
def progress_bar(*, output_is_stdout: bool = False) -> Iterator[Report | None]:
    """Yield a progress callback drawing on stderr, or None where nobody would see it.

    No bar when stderr is not a terminal, nor when the command's own output goes to
    the same terminal on stdout, where the bar would be drawn over it.
    """
    if not sys.stderr.isatty() or (output_is_stdout and sys.stdout.isatty()):
        yield None
        return

    from rich.console import Console
    from rich.progress import Progress

    tasks: dict[str, object] = {}
    with Progress(console=Console(stderr=True), transient=True) as bar:

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_TITLES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        yield report
