"""The click writer: a process beside each server worker that stores its clicks.

Run as `python -m linkbroker.clickwriter [FILE_TO_CHECKPOINT...]` by the worker,
which streams raw clicks to its stdin in frames and reads one reply line per
commit on its stdout. Classifying, hashing, summing and the SQLite transaction all
run here: in a thread of the worker they competed with the event loop for the GIL,
and every flush showed up in the tail latency of requests.

A frame is a header (payload length, sequence number, number of clicks, whether
to commit after it) and a payload of raw clicks. The writer commits when asked to,
when it holds a full batch, and at end of input, which is how a stopping worker
says it has handed everything over. Replies name the last frame a commit covered,
so that a worker knows which frames it may forget and which it must send again to
a new writer if this one dies.

The writer ignores SIGINT, SIGTERM and SIGHUP: a terminal or a service manager
sends them to the whole process group, and the writer must outlive its worker's last
hand-over. It stops at end of input, which also comes when the worker dies.
"""

import logging
import marshal
import os
import signal
import struct
import sys
from itertools import chain
from pathlib import Path
from typing import BinaryIO, NamedTuple

from linkbroker.clickdb import ClickWriter, RawClick
from linkbroker.errors import LinkbrokerError
from linkbroker.settings import Settings

logger = logging.getLogger("linkbroker.clickwriter")

# Payload length, sequence number, clicks in it, commit flag.
HEADER = struct.Struct("<IQI?")
# The writer yields the CPU to its worker: on a busy machine a click may wait a
# little longer to be written, rather than a request to be answered. Its pauses
# do most of that; at niceness 10 as well, two writers beside two busy workers got
# too little of the CPU to keep up, and fell seconds behind in a 10 s load.
NICENESS = 5
# Seconds of sleep after each chunk of work, which frees the core for a waiting
# worker at once (see ClickWriter.write).
PAUSE = 0.00005
READY = b"ready\n"


def encode(seq: int, clicks: list[RawClick], commit: bool) -> bytes:
    """Return one frame of raw clicks, as the worker sends it."""
    # marshal, not pickle: a frame holds only tuples of str, float, bool and bytes,
    # which marshal encodes in about two thirds of pickle's time on the event loop,
    # and its format changing between Python versions cannot matter, as both ends
    # run the same interpreter. In alternating load runs the tail was shorter too.
    payload = marshal.dumps(clicks)
    return HEADER.pack(len(payload), seq, len(clicks), commit) + payload


def decode(payload: bytes) -> list[RawClick]:
    """Return the raw clicks of a frame's payload."""
    # Frames come only from the worker that started this process, through its pipe.
    clicks: list[RawClick] = marshal.loads(payload)  # noqa: S302
    return clicks


class Frame(NamedTuple):
    """One hand-over from the worker."""

    seq: int
    clicks: int
    commit: bool
    payload: bytes


def decode_frame(frame: bytes) -> list[RawClick]:
    """Return the raw clicks of a whole frame, header included."""
    return decode(frame[HEADER.size :])


def read_frame(stream: BinaryIO) -> Frame | None:
    """Return the next frame, or None at end of input."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, seq, clicks, commit = HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return Frame(seq, clicks, commit, payload)


def reply_ok(through: int, written: int) -> bytes:
    """Return the line that confirms every frame up to `through` as written."""
    return f"ok {through} {written}\n".encode()


def reply_error(through: int) -> bytes:
    """Return the line saying a commit up to `through` failed; the clicks are held."""
    return f"error {through}\n".encode()


class _Held:
    """Frames received and not yet written, kept encoded: half the size of rows."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.clicks = 0
        self.through = 0

    def add(self, frame: Frame) -> None:
        self.payloads.append(frame.payload)
        self.clicks += frame.clicks
        self.through = frame.seq

    def commit(self, writer: ClickWriter, stdout: BinaryIO) -> bool:
        clicks = chain.from_iterable(map(decode, self.payloads))
        try:
            written = writer.write(clicks) if self.clicks else 0
        except Exception:
            # The frames stay held; the worker's next flush asks again.
            logger.exception("could not write %d clicks; keeping them", self.clicks)
            _send(stdout, reply_error(self.through))
            return False
        self.payloads, self.clicks = [], 0
        _send(stdout, reply_ok(self.through, written))
        writer.checkpoint()
        return True


def serve(writer: ClickWriter, stdin: BinaryIO, stdout: BinaryIO) -> bool:
    """Write frames from `stdin` until end of input; return whether all were stored."""
    held = _Held()
    while (frame := read_frame(stdin)) is not None:
        held.add(frame)
        if frame.commit or held.clicks >= writer.settings.flush_batch:
            held.commit(writer, stdout)
    # End of input: the worker is stopping, or gone. Either way, store what is held.
    stored = held.commit(writer, stdout)
    if not stored:
        logger.error("stopping with %d clicks not written", held.clicks)
    return stored


def _send(stdout: BinaryIO, line: bytes) -> None:
    try:
        stdout.write(line)
        stdout.flush()
    except BrokenPipeError:
        pass  # the worker is gone; what matters is that the clicks are stored


def main(argv: list[str]) -> int:
    """Open the database, say ready, and write clicks until end of input."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.nice(NICENESS)
    _log_to_stderr()
    try:
        paths = [Path(path) for path in argv]
        writer = ClickWriter(Settings.load(), paths, pause=PAUSE)
    except LinkbrokerError as exc:
        logger.error("the click writer cannot start: %s", exc)
        return 1

    stdout = sys.stdout.buffer
    _send(stdout, READY)
    try:
        stored = serve(writer, sys.stdin.buffer, stdout)
    finally:
        writer.close()
    return 0 if stored else 1


class _Formatter(logging.Formatter):
    # Lines in step with uvicorn's ("INFO:     ..."), without importing uvicorn.
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname + ':':<10}{super().format(record)}"


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    root = logging.getLogger("linkbroker")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
