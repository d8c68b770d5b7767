"""One Settings object, built once at an entry point and passed down.

Each value comes from an explicit option first, then its LINKBROKER_* environment
variable, then a default under the user's data directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from linkbroker.errors import ConfigError

APP_NAME = "linkbroker"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

_T = TypeVar("_T")
if TYPE_CHECKING:  # ipaddress is imported only where proxies are configured
    import ipaddress

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    """Where linkbroker keeps its data and how it behaves."""

    db_path: Path
    cache_dir: Path
    base_url: str = DEFAULT_BASE_URL
    slug_length: int = 7
    flush_interval: float = 1.0
    flush_batch: int = 20_000
    retention_days: int = 90
    trusted_proxies: tuple[IPNetwork, ...] = field(default=())
    rate_limit: int = 60
    rate_burst: int = 20
    max_body: int = 16 * 1024
    allow_private: bool = False
    blocklist: Path | None = None

    @classmethod
    def load(
        cls,
        *,
        db_path: Path | None = None,
        cache_dir: Path | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build the settings from explicit values, the environment and defaults."""
        env = os.environ if environ is None else environ
        return cls(
            db_path=Path(
                db_path or env.get("LINKBROKER_DB") or _default_data_dir() / "links.db"
            ),
            cache_dir=Path(
                cache_dir
                or env.get("LINKBROKER_CACHE_DIR")
                or _default_data_dir() / "cache"
            ),
            base_url=_base_url(base_url or env.get("LINKBROKER_BASE_URL")),
            slug_length=_number(env, "LINKBROKER_SLUG_LENGTH", int, 7, 4, 32),
            flush_interval=_number(
                env, "LINKBROKER_FLUSH_INTERVAL", float, 1.0, 0.01, 60.0
            ),
            flush_batch=_number(env, "LINKBROKER_FLUSH_BATCH", int, 20_000, 1, 10**6),
            retention_days=_number(env, "LINKBROKER_RETENTION_DAYS", int, 90, 1, 10**5),
            trusted_proxies=_networks(env.get("LINKBROKER_TRUSTED_PROXIES", "")),
            rate_limit=_number(env, "LINKBROKER_RATE_LIMIT", int, 60, 0, 10**6),
            rate_burst=_number(env, "LINKBROKER_RATE_BURST", int, 20, 1, 10**6),
            max_body=_number(env, "LINKBROKER_MAX_BODY", int, 16 * 1024, 256, 2**24),
            allow_private=_flag(env, "LINKBROKER_ALLOW_PRIVATE"),
            blocklist=_path(env.get("LINKBROKER_BLOCKLIST")),
        )

    def short_url(self, slug: str) -> str:
        """Return the public short URL of `slug`."""
        return f"{self.base_url}/{slug}"

    def environ(self) -> dict[str, str]:
        """Return these settings as LINKBROKER_* variables, for a child process."""
        return {
            "LINKBROKER_DB": str(self.db_path),
            "LINKBROKER_CACHE_DIR": str(self.cache_dir),
            "LINKBROKER_BASE_URL": self.base_url,
            "LINKBROKER_SLUG_LENGTH": str(self.slug_length),
            "LINKBROKER_FLUSH_INTERVAL": str(self.flush_interval),
            "LINKBROKER_FLUSH_BATCH": str(self.flush_batch),
            "LINKBROKER_RETENTION_DAYS": str(self.retention_days),
            "LINKBROKER_TRUSTED_PROXIES": ",".join(map(str, self.trusted_proxies)),
            "LINKBROKER_RATE_LIMIT": str(self.rate_limit),
            "LINKBROKER_RATE_BURST": str(self.rate_burst),
            "LINKBROKER_MAX_BODY": str(self.max_body),
            "LINKBROKER_ALLOW_PRIVATE": "1" if self.allow_private else "0",
            "LINKBROKER_BLOCKLIST": str(self.blocklist or ""),
        }


def _default_data_dir() -> Path:
    # Imported here: platformdirs is only needed when no path was given.
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _base_url(value: str | None) -> str:
    if not value:
        return DEFAULT_BASE_URL
    if not value.startswith(("http://", "https://")) or len(value.split("/")) < 3:
        raise ConfigError(
            f"The base URL {value!r} is not an http(s) URL; set LINKBROKER_BASE_URL "
            "or --base-url to something like https://s.example.com.",
            value,
        )
    return value.rstrip("/")


def _number(
    env: Mapping[str, str],
    name: str,
    kind: Callable[[str], _T],
    default: _T,
    low: float,
    high: float,
) -> _T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # type: ignore[operator]
        raise ConfigError(
            f"{name}={raw!r} is not a number from {low:g} to {high:g}; "
            "fix or unset it.",
            raw,
        )
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise ConfigError(f"{name}={raw!r} is not a yes or no; set it to 1 or 0.", raw)


def _path(raw: str | None) -> Path | None:
    return Path(raw) if raw else None


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    if not raw.strip():
        return ()
    import ipaddress

    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"LINKBROKER_TRUSTED_PROXIES holds {item!r}, which is not an IP "
                "address or network; list addresses like 127.0.0.1,10.0.0.0/8.",
                item,
            ) from exc
    return tuple(networks)
