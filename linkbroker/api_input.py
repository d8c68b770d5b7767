"""Reading API requests: bodies, fields, query parameters and headers.

Every mistake a client can make becomes an ApiError with the status and the stable
code it answers with, so the routes in api.py read as what they do.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import parse_qs

from linkbroker import lifecycle
from linkbroker.model import UNSET, Unset

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Headers = Sequence[tuple[bytes, bytes]]
T = TypeVar("T")


class ApiError(Exception):
    """A request the API refuses, with the status and code it answers with."""

    def __init__(
        self, status: HTTPStatus, code: str, message: str, headers: Headers = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, list(headers)


async def json_body(scope: Message, receive: Receive, limit: int) -> dict[str, Any]:
    content_type = header(scope, b"content-type").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    raw = await read_body(scope, receive, limit)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_json",
            f"The body is not valid JSON: {exc}.",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_json", "The body must be a JSON object."
        )
    return body


async def read_body(scope: Message, receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(HTTPStatus.BAD_REQUEST, "disconnected", "The client left.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def too_large(limit: int) -> ApiError:
    return ApiError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "body_too_large",
        f"The body is larger than {limit:,} bytes; send less.",
    )


def only_fields(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unknown_field",
            f"Unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}.",
        )


def string_field(body: dict[str, Any], name: str) -> str | None:
    return typed(body, name, str, "a string")


def int_field(body: dict[str, Any], name: str) -> int | None:
    return typed(body, name, int, "a whole number")


def typed(body: dict[str, Any], name: str, kind: type[T], what: str) -> T | None:
    value = body.get(name)
    # bool is an int to Python, never to a client.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_field",
            f"The field {name!r} must be {what}, not {type(value).__name__}.",
        )
    return value


def required_string(body: dict[str, Any], name: str) -> str:
    return required(name, string_field(body, name))


def required_int(body: dict[str, Any], name: str) -> int:
    return required(name, int_field(body, name))


def required(name: str, value: T | None) -> T:
    if value is None:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "missing_field", f"The field {name!r} is required."
        )
    return value


def bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_field",
            f"The field {name!r} must be true or false.",
        )
    return value


def given(
    body: dict[str, Any], name: str, read: Callable[[dict[str, Any], str], T]
) -> T | Unset:
    """Read `name` when the body has it: absent means "leave it as it is"."""
    return read(body, name) if name in body else UNSET


def flag_param(scope: Message, name: str) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = query.get(name, ["false"])[-1].lower()
    if raw not in {"true", "false", "1", "0"}:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_parameter",
            f"The parameter {name}={raw!r} must be true or false.",
        )
    return raw in {"true", "1"}


def int_param(
    query: dict[str, list[str]], name: str, default: int, low: int, high: int
) -> int:
    values = query.get(name)
    if not values:
        return default
    raw = values[-1]
    # isdigit alone admits '²' and numbers too long for int(); both are refused.
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 19
    if not valid or not low <= int(raw) <= high:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_parameter",
            f"The parameter {name}={raw!r} must be a whole number "
            f"from {low} to {high}.",
        )
    return int(raw)


def header(scope: Message, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def expiry_edit(body: dict[str, Any]) -> str | Unset | None:
    """Read an edit's expiry: left out, removed (both null), or a new one."""
    if "expiresIn" not in body and "expiresAt" not in body:
        return UNSET
    expires_in = string_field(body, "expiresIn")
    expires_at = string_field(body, "expiresAt")
    if expires_in is None and expires_at is None:
        return None  # both null: the link no longer expires
    return lifecycle.expiry(expires_in, expires_at)


def query(scope: Message) -> dict[str, list[str]]:
    """Return the request's query parameters."""
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))
