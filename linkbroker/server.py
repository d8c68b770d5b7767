"""The ASGI redirect server: routing, the redirect fast path, errors, lifespan.

No framework on the redirect path: a dict look-up, a tuple appended for the click
recorder, and a response start message built once per link.

Each worker keeps links it served in a small dict in front of the shared cache.
An edit or a delete anywhere bumps the cache's generation; every worker polls it a
few times a second and drops its dict when it moved, so the change is served
everywhere within POLL_INTERVAL (plus one poll's time).
"""

import asyncio
import gc
import itertools
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, NamedTuple

from linkbroker import bots, slugs
from linkbroker.api import Api, Image
from linkbroker.api_input import header
from linkbroker.clicks import ClickRecorder, RawClick
from linkbroker.errors import LinkbrokerError
from linkbroker.limits import ClickLimits
from linkbroker.model import PERMANENT_STATUSES, Target
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.tokens import TokenStore

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

POLL_INTERVAL = 0.2
# Expired cache entries are removed this often, off the request path.
TIDY_INTERVAL = 300.0
# Bounds the per-worker dict: about 600 bytes an entry, so some 3 MiB at most.
LOCAL_ENTRIES = 5_000

# Browsers and proxies must ask again every time: an edit or a delete takes effect at
# once, and every repeat click reaches the server to be counted.
NO_STORE = (b"cache-control", b"no-store, max-age=0")
_EMPTY_BODY: Message = {"type": "http.response.body", "body": b""}


def _start(status: HTTPStatus, headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _text(
    status: HTTPStatus, text: str, *extra: tuple[bytes, bytes]
) -> tuple[Message, bytes]:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        NO_STORE,
        *extra,
    ]
    return _start(status, headers), body


_NOT_FOUND = _text(HTTPStatus.NOT_FOUND, "Not found: no link has this address.\n")
_NOT_ALLOWED = _text(
    HTTPStatus.METHOD_NOT_ALLOWED,
    "Method not allowed: short links answer GET and HEAD.\n",
    (b"allow", b"GET, HEAD"),
)
_FIXED_ROUTES = {
    "healthz": _text(HTTPStatus.OK, "OK\n"),
    "": _text(HTTPStatus.OK, "linkbroker: short links served from one machine.\n"),
}
_REDIRECT_METHODS = frozenset({"GET", "HEAD"})
# API methods that may change a link; a new link needs no refresh.
_CHANGES = frozenset({"POST", "PATCH", "DELETE"})
_UNAVAILABLE = _text(
    HTTPStatus.SERVICE_UNAVAILABLE, "The link store is unavailable; try again soon.\n"
)
_GONE = _text(
    HTTPStatus.GONE, "Gone: this link has expired, run out or been switched off.\n"
)


class _Guarded(NamedTuple):
    """A link checked on every request, with its redirects built once."""

    target: Target
    start: Message
    fallback: Message | None
    # Set once the click limit is found spent, so that an exhausted link stops
    # asking SQLite for the write lock; re-arming it bumps the generation.
    spent: bool = False


class App:
    """The redirect server, one instance per worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: LinkStore | None = None
        self.clicks: ClickRecorder | None = None
        self.tokens: TokenStore | None = None
        self.api: Api | None = None
        self.limits: ClickLimits | None = None
        self._local: dict[str, Message] = {}
        self._guarded: dict[str, _Guarded] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._generation = 0
        self._keep_forwarded = bool(settings.trusted_proxies)
        # A permanent redirect is cached by browsers anyway; a bounded max-age at
        # least tells them when to ask again.
        self._permanent = (
            b"cache-control",
            f"max-age={settings.permanent_max_age}".encode(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        slug: str = scope["path"][1:]
        start: Message | None = self._local.get(slug)
        if start is None:
            await self._uncommon(slug, scope, receive, send)
        elif scope["method"] in _REDIRECT_METHODS:
            if self._record(slug, scope):
                await self._recorder().room()
            await send(start)
            await send(_EMPTY_BODY)
        else:
            await self._reply(send, scope, _NOT_ALLOWED)

    async def _uncommon(
        self, slug: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer what the local dict of plain links does not hold."""
        fixed = _FIXED_ROUTES.get(slug)
        if fixed is not None:
            await self._reply(send, scope, fixed)
            return
        if slug == "api" or slug.startswith("api/"):
            await self._api_reply(scope, receive, send)
            return
        try:
            found = self._lookup(slug)
        except (LinkbrokerError, sqlite3.Error):
            logger.exception("could not resolve %r", slug)
            await self._reply(send, scope, _UNAVAILABLE)
            return

        if found is None:
            await self._reply(send, scope, _NOT_FOUND)
        elif scope["method"] not in _REDIRECT_METHODS:
            await self._reply(send, scope, _NOT_ALLOWED)
        elif isinstance(found, _Guarded):
            await self._serve_guarded(slug, found, scope, send)
        else:
            if self._record(slug, scope):
                await self._recorder().room()
            await send(found)
            await send(_EMPTY_BODY)

    def _lookup(self, slug: str) -> Message | _Guarded | None:
        """Resolve a slug the local dict does not hold, and remember a link found.

        Absences are not remembered here: the shared cache keeps them, and a link
        created later is then served at once without any signal to this worker.
        """
        guarded = self._guarded.get(slug)
        if guarded is not None:
            return guarded
        if not slugs.is_well_formed(slug):
            return None
        target = self._store().resolve(slug)
        if target is None:
            return None

        if len(self._local) + len(self._guarded) >= LOCAL_ENTRIES:
            self._local.clear()
            self._guarded.clear()
        start = self._redirect(target.destination, target.status)
        if not target.guarded:
            self._local[slug] = start
            return start
        fallback = None
        if target.fallback is not None:
            fallback = self._redirect(target.fallback, HTTPStatus.FOUND)
        guarded = self._guarded[slug] = _Guarded(target, start, fallback)
        return guarded

    async def _serve_guarded(
        self, slug: str, guarded: _Guarded, scope: Scope, send: Send
    ) -> None:
        try:
            start = await self._judge(slug, guarded, scope)
        except (LinkbrokerError, sqlite3.Error):
            logger.exception("could not count a click against %r's limit", slug)
            await self._reply(send, scope, _UNAVAILABLE)
            return
        if start is None:
            await self._reply(send, scope, _GONE)
            return
        if self._record(slug, scope):
            await self._recorder().room()
        await send(start)
        await send(_EMPTY_BODY)

    async def _judge(
        self, slug: str, guarded: _Guarded, scope: Scope
    ) -> Message | None:
        """Return the redirect a guarded link answers with now, or None for Gone."""
        target = guarded.target
        if target.disabled:
            return None
        if target.expires is not None and time.time() >= target.expires:
            return guarded.fallback
        limited = target.max_clicks is not None
        if limited and (guarded.spent or not await self._click_allowed(slug, scope)):
            self._spend(slug, guarded)
            return guarded.fallback
        return guarded.start

    async def _click_allowed(self, slug: str, scope: Scope) -> bool:
        # Bots, previews and HEAD see the link but never use up its clicks.
        limits = self._limits()
        if (
            scope["method"] == "GET"
            and bots.classify(header(scope, b"user-agent")) is None
        ):
            return await limits.take(slug)
        return await limits.left(slug)

    def _spend(self, slug: str, guarded: _Guarded) -> None:
        # Only the entry this request read: a refresh may have dropped it since.
        if self._guarded.get(slug) is guarded:
            self._guarded[slug] = guarded._replace(spent=True)

    def _redirect(self, destination: str, status: int) -> Message:
        permanent = status in PERMANENT_STATUSES
        return _start(
            HTTPStatus(status),
            [
                (b"location", destination.encode("ascii")),
                self._permanent if permanent else NO_STORE,
                (b"content-length", b"0"),
            ],
        )

    def _record(self, slug: str, scope: Scope) -> bool:
        """Record a click; return True if the answer must wait for the writer."""
        user_agent = referrer = forwarded = b""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value
            elif name == b"referer":
                referrer = value
            elif name == b"x-forwarded-for" and self._keep_forwarded:
                forwarded = value
        client = scope.get("client")
        peer = client[0] if client else ""
        head = scope["method"] == "HEAD"
        raw: RawClick = (slug, time.time(), head, user_agent, referrer, forwarded, peer)
        return self._recorder().record(raw)

    async def _api_reply(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.api is not None, "startup opens the API"
        (status, payload), extra = await self.api.handle(scope, receive)
        if scope["method"] in _CHANGES and not scope["path"].endswith("/shorten"):
            self.refresh()  # this worker serves its own change at once
        if isinstance(payload, Image):
            media_type, body = payload
        else:
            media_type = b"application/json"
            body = b"" if payload is None else json.dumps(payload).encode()
        headers = [
            (b"content-type", media_type),
            (b"content-length", str(len(body)).encode()),
            NO_STORE,
            *extra,
        ]
        await send(_start(status, headers))
        await send({"type": "http.response.body", "body": body})

    async def _reply(
        self, send: Send, scope: Scope, response: tuple[Message, bytes]
    ) -> None:
        start, body = response
        await send(start)
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except LinkbrokerError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open the store and the recorder, and start the background tasks."""
        # What start-up built lives as long as the worker: keep it out of every
        # later full collection, which would otherwise walk it again and again.
        gc.freeze()
        self.store = LinkStore(self.settings, autocheckpoint=False)
        self._generation = self.store.cache.generation()
        self.clicks = ClickRecorder(
            self.settings, also_checkpoint=[self.store.cache.path]
        )
        await self.clicks.start()
        self.tokens = TokenStore(self.settings.db_path, autocheckpoint=False)
        self.api = Api(self.store, self.tokens)
        self.limits = ClickLimits(self.settings)
        self._tasks = [
            asyncio.create_task(self.clicks.run()),
            asyncio.create_task(self._watch_generation()),
        ]

    async def shutdown(self) -> None:
        """Flush every pending click, then close the store and the recorder."""
        recorder, flusher, watcher = self._recorder(), self._tasks[0], self._tasks[1]
        watcher.cancel()
        recorder.stop()
        await asyncio.gather(flusher, watcher, return_exceptions=True)
        left = recorder.pending()
        if left:
            # The click writer could not write them; one more try here.
            logger.warning("writing the last %d clicks before stopping", left)
            try:
                recorder.flush_now()
            except (sqlite3.Error, LinkbrokerError):
                logger.exception("lost %d clicks: the database refused them", left)
        logger.info("stopped; clicks written since start: %d", recorder.written)
        recorder.close()
        self._limits().close()
        self._store().close()
        if self.tokens is not None:
            self.tokens.close()

    async def _watch_generation(self) -> None:
        polls_per_tidy = round(TIDY_INTERVAL / POLL_INTERVAL)
        for poll in itertools.count(1):
            await asyncio.sleep(POLL_INTERVAL)
            try:
                self.refresh()
                if poll % polls_per_tidy == 0:
                    await asyncio.to_thread(self._store().cache.tidy)
            except Exception:
                # Keep polling: a worker that stopped would serve stale links.
                logger.exception("could not read the cache's generation")

    def refresh(self) -> None:
        """Drop the local copies if any process changed a link since the last look."""
        generation = self._store().cache.generation()
        if generation != self._generation:
            self._generation = generation
            self._local.clear()
            self._guarded.clear()

    def _store(self) -> LinkStore:
        assert self.store is not None, "startup opens the store"
        return self.store

    def _limits(self) -> ClickLimits:
        assert self.limits is not None, "startup opens the click limits"
        return self.limits

    def _recorder(self) -> ClickRecorder:
        assert self.clicks is not None, "startup opens the recorder"
        return self.clicks


def create_app() -> App:
    """Build the app from LINKBROKER_* variables; the factory uvicorn workers call."""
    return App(Settings.load())
