"""The baseline: an ASGI app answering every path with the same 302, nothing else."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

_START: Message = {
    "type": "http.response.start",
    "status": 302,
    "headers": [(b"location", b"https://example.com/"), (b"content-length", b"0")],
}
_BODY: Message = {"type": "http.response.body", "body": b""}


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer any HTTP request with a fixed redirect."""
    if scope["type"] == "http":
        await send(_START)
        await send(_BODY)
