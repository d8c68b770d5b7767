"""The values that pass between the store, the cache, the CLI and the server."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """What serving a slug needs: the little that is cached."""

    destination: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link as stored, with its human and bot click counts."""

    slug: str
    destination: str
    created_at: str
    clicks: int
    bot_clicks: int = 0

    def as_dict(self) -> dict[str, str | int]:
        """Return the link as the JSON object the CLI and the API print."""
        return {
            "slug": self.slug,
            "destination": self.destination,
            "created_at": self.created_at,
            "clicks": self.clicks,
            "bot_clicks": self.bot_clicks,
        }
