"""The management API under /api: bearer tokens, JSON in and out, rate limits.

It keeps the request and response shape of `POST /api/shorten` from the edge design
linkbroker replaces, so existing clients work unchanged, and closes what that design
left open: every route needs a token, writes are rate-limited per token and per
address, and bodies are bounded. Errors are JSON with a stable `code`; the mapping
from linkbroker's exceptions to HTTP statuses lives in `_ERRORS`, and nowhere else.
"""

import json
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qs

from linkbroker import lifecycle, openapi, qrcodes
from linkbroker.clicks import client_address
from linkbroker.errors import (
    ConfigError,
    InvalidDestination,
    InvalidSlug,
    InvalidTerms,
    InvalidToken,
    LinkbrokerError,
    LinkNotFound,
    RateLimited,
    SlugTaken,
    StorageError,
)
from linkbroker.model import DEFAULT_STATUS, UNSET, Edit, Terms, Unset
from linkbroker.stats import link_report
from linkbroker.store import LinkStore
from linkbroker.tokens import TokenStore

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Headers = Sequence[tuple[bytes, bytes]]
T = TypeVar("T")

_ERRORS: dict[type[LinkbrokerError], tuple[HTTPStatus, str]] = {
    InvalidToken: (HTTPStatus.UNAUTHORIZED, "unauthorized"),
    RateLimited: (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited"),
    LinkNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
    SlugTaken: (HTTPStatus.CONFLICT, "slug_taken"),
    InvalidDestination: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_destination"),
    InvalidSlug: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_slug"),
    InvalidTerms: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_terms"),
    StorageError: (HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"),
    ConfigError: (HTTPStatus.SERVICE_UNAVAILABLE, "misconfigured"),
}
_FIELDS: dict[type[LinkbrokerError], str] = {
    InvalidDestination: "destination",
    InvalidSlug: "slug",
}
_WRITES = frozenset({"POST", "PATCH", "DELETE"})
_TERMS = {"status", "expiresIn", "expiresAt", "maxClicks", "fallback"}
_CREATE_FIELDS = {"slug", "destination", "reclaim", *_TERMS}
_EDIT_FIELDS = {"destination", "disabled", *_TERMS}
MAX_PAGE = 1000


class ApiError(Exception):
    """A request the API refuses, with the status and code it answers with."""

    def __init__(
        self, status: HTTPStatus, code: str, message: str, headers: Headers = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, list(headers)


class Image(NamedTuple):
    """A reply that is not JSON: a media type and the bytes."""

    media_type: bytes
    data: bytes


Reply = tuple[HTTPStatus, Any]


class Api:
    """Answers every request under /api."""

    def __init__(self, store: LinkStore, tokens: TokenStore) -> None:
        self.store, self.tokens = store, tokens
        self.settings = store.settings

    async def handle(self, scope: Message, receive: Receive) -> tuple[Reply, Headers]:
        """Answer one request; every failure becomes a JSON error, never a 500."""
        try:
            return await self._dispatch(scope, receive), []
        except ApiError as exc:
            return (exc.status, _error(exc.code, str(exc))), exc.headers
        except sqlite3.Error as exc:
            logger.exception("API request failed on storage")
            message = f"The link store is unavailable ({exc}); try again."
            return (HTTPStatus.SERVICE_UNAVAILABLE, _error("unavailable", message)), []
        except LinkbrokerError as exc:
            status, code = _status_of(exc)
            if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
                logger.exception("API request failed")
            error = _error(code, str(exc))
            field = _FIELDS.get(type(exc)) or getattr(exc, "field", None)
            if field:
                error["error"]["field"] = field
            return (status, error), _extra_headers(exc)

    async def _dispatch(self, scope: Message, receive: Receive) -> Reply:
        method, parts = scope["method"], scope["path"].split("/")[2:]
        self._authenticate(scope)
        if method in _WRITES:
            self._limit(scope)

        match parts:
            case ["openapi.json"]:
                _allow(method, "GET")
                return HTTPStatus.OK, openapi.document(self.settings.base_url)
            case ["shorten"]:
                _allow(method, "POST")
                body = await _json_body(scope, receive, self.settings.max_body)
                return self._shorten(body, scope)
            case ["links"]:
                _allow(method, "GET")
                return self._list(scope)
            case ["links", slug]:
                return await self._one_link(method, slug, scope, receive)
            case ["links", slug, action]:
                return self._link_part(method, slug, action, scope)
        raise _no_route()

    def _link_part(self, method: str, slug: str, action: str, scope: Message) -> Reply:
        match action:
            case "stats":
                _allow(method, "GET")
                return HTTPStatus.OK, link_report(self.store, slug)
            case "history":
                _allow(method, "GET")
                history = self.store.history(slug)
                return HTTPStatus.OK, {
                    "slug": slug,
                    "history": [change.as_dict() for change in history],
                }
            case "revert":
                _allow(method, "POST")
                link = self.store.revert(slug, by=_author(scope))
                return HTTPStatus.OK, link.as_dict()
            case "qr":
                _allow(method, "GET")
                return HTTPStatus.OK, self._qr(slug, scope)
        raise _no_route()

    def _qr(self, slug: str, scope: Message) -> Image:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        kind = query.get("format", ["svg"])[-1]
        if kind not in qrcodes.MEDIA_TYPES:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_parameter",
                f"The parameter format={kind!r} must be svg or png.",
            )
        link = self.store.get(slug)
        data = qrcodes.image(self.settings.short_url(link.slug), kind)
        return Image(qrcodes.MEDIA_TYPES[kind].encode(), data)

    async def _one_link(
        self, method: str, slug: str, scope: Message, receive: Receive
    ) -> Reply:
        _allow(method, "GET", "PATCH", "DELETE")
        if method == "GET":
            return HTTPStatus.OK, self.store.get(slug).as_dict()
        if method == "DELETE":
            if _flag_param(scope, "purge"):
                self.store.purge(slug)
            else:
                self.store.delete(slug)
            return HTTPStatus.NO_CONTENT, None

        body = await _json_body(scope, receive, self.settings.max_body)
        _only_fields(body, _EDIT_FIELDS)
        edit = Edit(
            destination=_given(body, "destination", _required_string),
            status=_given(body, "status", _required_int),
            expires_at=_expiry_edit(body),
            max_clicks=_given(body, "maxClicks", _int_field),
            fallback=_given(body, "fallback", _string_field),
            disabled=_given(body, "disabled", _bool_field),
        )
        link = self.store.edit(slug, edit, by=_author(scope))
        return HTTPStatus.OK, self._with_warning(link.as_dict(), edit.status)

    def _shorten(self, body: dict[str, Any], scope: Message) -> Reply:
        _only_fields(body, _CREATE_FIELDS)
        destination = _required_string(body, "destination")
        status = _int_field(body, "status")
        terms = Terms(
            status=DEFAULT_STATUS if status is None else status,
            expires_at=lifecycle.expiry(
                _string_field(body, "expiresIn"), _string_field(body, "expiresAt")
            ),
            max_clicks=_int_field(body, "maxClicks"),
            fallback=_string_field(body, "fallback"),
        )
        link = self.store.create(
            destination,
            _string_field(body, "slug"),
            terms=terms,
            reclaim=_given(body, "reclaim", _bool_field) is True,
            by=_author(scope),
        )
        short_url = self.settings.short_url(link.slug)
        reply = {
            "success": True,
            "shortUrl": short_url,
            "slug": link.slug,
            "destination": link.destination,
        }
        return HTTPStatus.CREATED, self._with_warning(reply, terms.status)

    def _with_warning(self, reply: dict[str, Any], status: int | Unset) -> Any:
        if status is not UNSET:
            warning = lifecycle.permanent_warning(
                status, self.settings.permanent_max_age
            )
            if warning:
                reply["warning"] = warning
        return reply

    def _list(self, scope: Message) -> Reply:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        limit = _int_param(query, "limit", 50, 1, MAX_PAGE)
        offset = _int_param(query, "offset", 0, 0, 2**62)
        links = self.store.newest(limit + 1, offset)
        more = len(links) > limit
        return HTTPStatus.OK, {
            "links": [link.as_dict() for link in links[:limit]],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }

    def _authenticate(self, scope: Message) -> None:
        header = _header(scope, b"authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken(
                "This route needs a token: send 'Authorization: Bearer <token>'; "
                "make one with `linkbroker token create NAME`.",
                None,
            )
        scope["linkbroker.token"] = self.tokens.verify(token.strip())

    def _limit(self, scope: Message) -> None:
        client = scope.get("client")
        peer = client[0] if client else ""
        forwarded = _header(scope, b"x-forwarded-for").encode("latin-1")
        address = client_address(forwarded, peer, self.settings.trusted_proxies)
        keys = (f"token:{scope['linkbroker.token']}", f"address:{address}")
        self.store.cache.limit(keys, self.settings)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"{method} is not allowed here; use {' or '.join(allowed)}.",
            [(b"allow", ", ".join(allowed).encode())],
        )


async def _json_body(scope: Message, receive: Receive, limit: int) -> dict[str, Any]:
    content_type = _header(scope, b"content-type").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    raw = await _read_body(scope, receive, limit)
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


async def _read_body(scope: Message, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(HTTPStatus.BAD_REQUEST, "disconnected", "The client left.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _no_route() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "not_found", "No API route has this path.")


def _too_large(limit: int) -> ApiError:
    return ApiError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "body_too_large",
        f"The body is larger than {limit:,} bytes; send less.",
    )


def _only_fields(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unknown_field",
            f"Unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}.",
        )


def _string_field(body: dict[str, Any], name: str) -> str | None:
    return _typed(body, name, str, "a string")


def _int_field(body: dict[str, Any], name: str) -> int | None:
    return _typed(body, name, int, "a whole number")


def _typed(body: dict[str, Any], name: str, kind: type[T], what: str) -> T | None:
    value = body.get(name)
    # bool is an int to Python, never to a client.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_field",
            f"The field {name!r} must be {what}, not {type(value).__name__}.",
        )
    return value


def _required_string(body: dict[str, Any], name: str) -> str:
    return _required(name, _string_field(body, name))


def _required_int(body: dict[str, Any], name: str) -> int:
    return _required(name, _int_field(body, name))


def _required(name: str, value: T | None) -> T:
    if value is None:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "missing_field", f"The field {name!r} is required."
        )
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_field",
            f"The field {name!r} must be true or false.",
        )
    return value


def _given(
    body: dict[str, Any], name: str, read: Callable[[dict[str, Any], str], T]
) -> T | Unset:
    """Read `name` when the body has it: absent means "leave it as it is"."""
    return read(body, name) if name in body else UNSET


def _expiry_edit(body: dict[str, Any]) -> str | Unset | None:
    if "expiresIn" not in body and "expiresAt" not in body:
        return UNSET
    expires_in = _string_field(body, "expiresIn")
    expires_at = _string_field(body, "expiresAt")
    if expires_in is None and expires_at is None:
        return None  # both null: the link no longer expires
    return lifecycle.expiry(expires_in, expires_at)


def _author(scope: Message) -> str:
    return f"token:{scope['linkbroker.token']}"


def _flag_param(scope: Message, name: str) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = query.get(name, ["false"])[-1].lower()
    if raw not in {"true", "false", "1", "0"}:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_parameter",
            f"The parameter {name}={raw!r} must be true or false.",
        )
    return raw in {"true", "1"}


def _int_param(
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


def _header(scope: Message, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _status_of(exc: LinkbrokerError) -> tuple[HTTPStatus, str]:
    for kind in type(exc).__mro__:
        if kind in _ERRORS:
            return _ERRORS[kind]
    return HTTPStatus.BAD_REQUEST, "invalid_request"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def _extra_headers(exc: LinkbrokerError) -> Headers:
    if isinstance(exc, InvalidToken):
        return [(b"www-authenticate", b'Bearer realm="linkbroker"')]
    if isinstance(exc, RateLimited):
        return [(b"retry-after", str(math.ceil(exc.retry_after)).encode())]
    return []
