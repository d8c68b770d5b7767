"""The values that pass between the store, the cache, the CLI and the server."""

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Literal

REDIRECT_STATUSES = (301, 302, 307, 308)
DEFAULT_STATUS = 302
# Browsers keep these without asking again; later edits never reach them.
PERMANENT_STATUSES = frozenset({301, 308})

# How times are stored: UTC, in the form SQLite's CURRENT_TIMESTAMP writes.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Target:
    """What serving a slug needs: the little that is cached.

    A link with an expiry, a click limit or disabled is "guarded": the server checks
    it on every request instead of answering from a prebuilt redirect.
    """

    destination: str
    status: int = DEFAULT_STATUS
    expires: float | None = None  # seconds since the epoch
    max_clicks: int | None = None
    fallback: str | None = None
    disabled: bool = False

    @property
    def guarded(self) -> bool:
        """Whether serving it takes a check beyond the redirect itself."""
        return self.disabled or self.expires is not None or self.max_clicks is not None


@dataclass(frozen=True, slots=True)
class Terms:
    """How a link redirects and until when: the part of a link besides its target.

    The fields are in the order the store writes them.
    """

    status: int = DEFAULT_STATUS
    expires_at: str | None = None  # TIME_FORMAT, UTC
    max_clicks: int | None = None
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A link as stored, with its human and bot click counts and its terms."""

    slug: str
    destination: str
    created_at: str
    clicks: int
    bot_clicks: int = 0
    status: int = DEFAULT_STATUS
    expires_at: str | None = None
    max_clicks: int | None = None
    limit_used: int = 0
    fallback: str | None = None
    disabled_at: str | None = None
    deleted_at: str | None = None

    @property
    def state(self) -> str:
        """One word for how the link answers now: active, or why it does not."""
        if self.deleted_at is not None:
            return "deleted"
        if self.disabled_at is not None:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now_text():
            return "expired"
        if self.max_clicks is not None and self.limit_used >= self.max_clicks:
            return "exhausted"
        return "active"

    def as_dict(self) -> dict[str, str | int | None]:
        """Return the link as the JSON object the CLI and the API print."""
        return {
            "slug": self.slug,
            "destination": self.destination,
            "created_at": self.created_at,
            "clicks": self.clicks,
            "bot_clicks": self.bot_clicks,
            "status": self.status,
            "state": self.state,
            "expires_at": self.expires_at,
            "max_clicks": self.max_clicks,
            "limit_used": self.limit_used,
            "fallback": self.fallback,
            "disabled_at": self.disabled_at,
            "deleted_at": self.deleted_at,
        }


class _Unset(enum.Enum):
    UNSET = "unset"


# Marks what an edit leaves as it is, where None already means "remove it".
UNSET = _Unset.UNSET
Unset = Literal[_Unset.UNSET]


@dataclass(frozen=True, slots=True)
class Edit:
    """What an edit changes; every field left UNSET stays as it is."""

    destination: str | Unset = UNSET
    status: int | Unset = UNSET
    expires_at: str | Unset | None = UNSET
    max_clicks: int | Unset | None = UNSET  # setting it starts counting afresh
    fallback: str | Unset | None = UNSET
    disabled: bool | Unset = UNSET

    def is_empty(self) -> bool:
        """Whether the edit changes nothing at all."""
        return all(getattr(self, name) is UNSET for name in self.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a link's destination history."""

    id: int
    destination: str
    status: int
    changed_at: str
    changed_by: str
    reverted_at: str | None
    reverted_by: str | None

    def as_dict(self) -> dict[str, str | int | None]:
        """Return the entry as the JSON object the CLI and the API print."""
        return {
            "id": self.id,
            "destination": self.destination,
            "status": self.status,
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
            "reverted_at": self.reverted_at,
            "reverted_by": self.reverted_by,
        }


def now_text() -> str:
    """Return the current UTC time as stored."""
    return dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)
