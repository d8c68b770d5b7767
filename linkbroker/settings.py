"""One Settings object, built once at an entry point and passed down.

Each value comes from an explicit option first, then its LINKBROKER_* environment
variable, then a default under the user's data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linkbroker.errors import ConfigError

APP_NAME = "linkbroker"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

if TYPE_CHECKING:  # ipaddress is imported only where proxies are configured
    import ipaddress

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# The numeric settings, each once: field, variable, type, default, lowest, highest.
_NUMBERS: tuple[tuple[str, str, type[int] | type[float], float, float, float], ...] = (
    ("slug_length", "LINKBROKER_SLUG_LENGTH", int, 7, 4, 32),
    ("flush_interval", "LINKBROKER_FLUSH_INTERVAL", float, 1.0, 0.01, 60.0),
    ("flush_batch", "LINKBROKER_FLUSH_BATCH", int, 20_000, 1, 10**6),
    ("retention_days", "LINKBROKER_RETENTION_DAYS", int, 90, 1, 10**5),
    ("rate_limit", "LINKBROKER_RATE_LIMIT", int, 60, 0, 10**6),
    ("rate_burst", "LINKBROKER_RATE_BURST", int, 20, 1, 10**6),
    ("max_body", "LINKBROKER_MAX_BODY", int, 16 * 1024, 256, 2**24),
    ("permanent_max_age", "LINKBROKER_PERMANENT_MAX_AGE", int, 86_400, 0, 10**8),
    ("worker_timeout", "LINKBROKER_WORKER_TIMEOUT", float, 30.0, 1.0, 3600.0),
)


@dataclass(frozen=True)
class Settings:
    """Where linkbroker keeps its data and how it behaves; built by `load`."""

    db_path: Path
    cache_dir: Path
    base_url: str
    slug_length: int
    flush_interval: float
    flush_batch: int
    retention_days: int
    rate_limit: int
    rate_burst: int
    max_body: int
    permanent_max_age: int
    worker_timeout: float
    trusted_proxies: tuple[IPNetwork, ...]
    allow_private: bool
    blocklist: Path | None

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
        numbers = {
            field: _number(env, name, kind, default, low, high)
            for field, name, kind, default, low, high in _NUMBERS
        }
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
            trusted_proxies=_networks(env.get("LINKBROKER_TRUSTED_PROXIES", "")),
            allow_private=_flag(env, "LINKBROKER_ALLOW_PRIVATE"),
            blocklist=_path(env.get("LINKBROKER_BLOCKLIST")),
            **numbers,  # type: ignore[arg-type]
        )

    def short_url(self, slug: str) -> str:
        """Return the public short URL of `slug`."""
        return f"{self.base_url}/{slug}"

    def environ(self) -> dict[str, str]:
        """Return these settings as LINKBROKER_* variables, for a child process."""
        numbers = {name: str(getattr(self, field)) for field, name, *_ in _NUMBERS}
        return {
            "LINKBROKER_DB": str(self.db_path),
            "LINKBROKER_CACHE_DIR": str(self.cache_dir),
            "LINKBROKER_BASE_URL": self.base_url,
            "LINKBROKER_TRUSTED_PROXIES": ",".join(map(str, self.trusted_proxies)),
            "LINKBROKER_ALLOW_PRIVATE": "1" if self.allow_private else "0",
            "LINKBROKER_BLOCKLIST": str(self.blocklist or ""),
            **numbers,
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
    kind: type[int] | type[float],
    default: float,
    low: float,
    high: float,
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
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
