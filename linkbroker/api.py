"""The management API under /api: bearer tokens, JSON in and out, rate limits.

It keeps the request and response shape of `POST /api/shorten` from the edge design
linkbroker replaces, so existing clients work unchanged, and closes what that design
left open: every route needs a token, writes are rate-limited per token and per
address, and bodies are bounded. Errors are JSON with a stable `code`; the mapping
from linkbroker's exceptions to HTTP statuses lives in `_ERRORS`, and nowhere else.
"""

import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple

from linkbroker import api_input as read
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
from linkbroker.writes import WriteQueue

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Headers = Sequence[tuple[bytes, bytes]]

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


class Image(NamedTuple):
    """A reply that is not JSON: a media type and the bytes."""

    media_type: bytes
    data: bytes


Reply = tuple[HTTPStatus, Any]
# What a request asks for, found and read but not yet done.
Work = Callable[[], Reply]


class Api:
    """Answers every request under /api."""

    def __init__(self, store: LinkStore, tokens: TokenStore) -> None:
        self.store, self.tokens = store, tokens
        self.settings = store.settings
        self.writes: WriteQueue[Reply] = WriteQueue(store)

    async def handle(self, scope: Message, receive: Receive) -> tuple[Reply, Headers]:
        """Answer one request; every failure becomes a JSON error, never a 500."""
        try:
            return await self._dispatch(scope, receive), []
        except read.ApiError as exc:
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
        method = scope["method"]
        self._authenticate(scope)
        work = await self._route(method, scope["path"].split("/")[2:], scope, receive)
        if method in _WRITES:
            return await self.writes.run(self._limit_keys(scope), work)
        return work()

    async def _route(
        self, method: str, parts: list[str], scope: Message, receive: Receive
    ) -> Work:
        """Find what the request asks for; reading its body is all it does yet."""
        match parts:
            case ["openapi.json"]:
                _allow(method, "GET")
                return lambda: (HTTPStatus.OK, openapi.document(self.settings.base_url))
            case ["shorten"]:
                _allow(method, "POST")
                body = await read.json_body(scope, receive, self.settings.max_body)
                return lambda: self._shorten(body, scope)
            case ["links"]:
                _allow(method, "GET")
                return lambda: self._list(scope)
            case ["links", slug]:
                return await self._one_link(method, slug, scope, receive)
            case ["links", slug, action]:
                return self._link_part(method, slug, action, scope)
        raise _no_route()

    def _link_part(self, method: str, slug: str, action: str, scope: Message) -> Work:
        match action:
            case "stats":
                _allow(method, "GET")
                return lambda: (HTTPStatus.OK, link_report(self.store, slug))
            case "history":
                _allow(method, "GET")
                return lambda: (HTTPStatus.OK, self._history(slug))
            case "revert":
                _allow(method, "POST")
                return lambda: self._revert(slug, scope)
            case "qr":
                _allow(method, "GET")
                return lambda: (HTTPStatus.OK, self._qr(slug, scope))
        raise _no_route()

    def _history(self, slug: str) -> dict[str, Any]:
        history = self.store.history(slug)
        return {"slug": slug, "history": [change.as_dict() for change in history]}

    def _revert(self, slug: str, scope: Message) -> Reply:
        link = self.store.revert(slug, by=_author(scope))
        return HTTPStatus.OK, link.as_dict()

    def _qr(self, slug: str, scope: Message) -> Image:
        query = read.query(scope)
        kind = query.get("format", ["svg"])[-1]
        if kind not in qrcodes.MEDIA_TYPES:
            raise read.ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_parameter",
                f"The parameter format={kind!r} must be svg or png.",
            )
        link = self.store.get(slug)
        data = qrcodes.image(self.settings.short_url(link.slug), kind)
        return Image(qrcodes.MEDIA_TYPES[kind].encode(), data)

    async def _one_link(
        self, method: str, slug: str, scope: Message, receive: Receive
    ) -> Work:
        _allow(method, "GET", "PATCH", "DELETE")
        if method == "GET":
            return lambda: (HTTPStatus.OK, self.store.get(slug).as_dict())
        if method == "DELETE":
            return lambda: self._delete(slug, read.flag_param(scope, "purge"))

        body = await read.json_body(scope, receive, self.settings.max_body)
        return lambda: self._edit(slug, body, scope)

    def _delete(self, slug: str, purge: bool) -> Reply:
        if purge:
            self.store.purge(slug)
        else:
            self.store.delete(slug)
        return HTTPStatus.NO_CONTENT, None

    def _edit(self, slug: str, body: dict[str, Any], scope: Message) -> Reply:
        read.only_fields(body, _EDIT_FIELDS)
        edit = Edit(
            destination=read.given(body, "destination", read.required_string),
            status=read.given(body, "status", read.required_int),
            expires_at=read.expiry_edit(body),
            max_clicks=read.given(body, "maxClicks", read.int_field),
            fallback=read.given(body, "fallback", read.string_field),
            disabled=read.given(body, "disabled", read.bool_field),
        )
        link = self.store.edit(slug, edit, by=_author(scope))
        return HTTPStatus.OK, self._with_warning(link.as_dict(), edit.status)

    def _shorten(self, body: dict[str, Any], scope: Message) -> Reply:
        read.only_fields(body, _CREATE_FIELDS)
        destination = read.required_string(body, "destination")
        status = read.int_field(body, "status")
        terms = Terms(
            status=DEFAULT_STATUS if status is None else status,
            expires_at=lifecycle.expiry(
                read.string_field(body, "expiresIn"),
                read.string_field(body, "expiresAt"),
            ),
            max_clicks=read.int_field(body, "maxClicks"),
            fallback=read.string_field(body, "fallback"),
        )
        link = self.store.create(
            destination,
            read.string_field(body, "slug"),
            terms=terms,
            reclaim=read.given(body, "reclaim", read.bool_field) is True,
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
        query = read.query(scope)
        limit = read.int_param(query, "limit", 50, 1, MAX_PAGE)
        offset = read.int_param(query, "offset", 0, 0, 2**62)
        links = self.store.newest(limit + 1, offset)
        more = len(links) > limit
        return HTTPStatus.OK, {
            "links": [link.as_dict() for link in links[:limit]],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }

    def _authenticate(self, scope: Message) -> None:
        header = read.header(scope, b"authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken(
                "This route needs a token: send 'Authorization: Bearer <token>'; "
                "make one with `linkbroker token create NAME`.",
                None,
            )
        scope["linkbroker.token"] = self.tokens.verify(token.strip())

    def _limit_keys(self, scope: Message) -> tuple[str, str]:
        """The allowances a write takes from: its token's and its client's."""
        client = scope.get("client")
        peer = client[0] if client else ""
        forwarded = read.header(scope, b"x-forwarded-for").encode("latin-1")
        address = client_address(forwarded, peer, self.settings.trusted_proxies)
        return f"token:{scope['linkbroker.token']}", f"address:{address}"


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise read.ApiError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method_not_allowed",
            f"{method} is not allowed here; use {' or '.join(allowed)}.",
            [(b"allow", ", ".join(allowed).encode())],
        )


def _no_route() -> read.ApiError:
    return read.ApiError(
        HTTPStatus.NOT_FOUND, "not_found", "No API route has this path."
    )


def _author(scope: Message) -> str:
    return f"token:{scope['linkbroker.token']}"


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
