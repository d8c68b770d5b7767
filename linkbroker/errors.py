"""linkbroker's exceptions.

LinkbrokerError
 ├── ConfigError          a setting holds a value linkbroker cannot use
 ├── StorageError         the database or the cache cannot be used
 ├── InvalidSlug          a custom slug breaks the slug rules
 ├── InvalidDestination   a destination URL is refused by the policy
 ├── SlugTaken            a custom slug already names a link
 ├── LinkNotFound         no link has this slug
 ├── InvalidTerms         an expiry, click limit, fallback or status is refused,
 │                        or a revert has nothing to go back to
 ├── InvalidToken         an API request's token is missing, wrong or revoked
 ├── TokenNotFound        no API token has this name
 ├── InvalidImport        a file to import or restore, or one of its rows, is unusable
 └── RateLimited          too many writes; `retry_after` says when to try again

Each carries the offending value as `value`; its message names that value and says
what to do. The CLI and the server translate them, each in one place.
"""


class LinkbrokerError(Exception):
    """Base class of every error linkbroker reports to a user."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class ConfigError(LinkbrokerError):
    """A setting holds a value linkbroker cannot use."""


class StorageError(LinkbrokerError):
    """The database or the cache folder cannot be opened or used."""


class InvalidSlug(LinkbrokerError):
    """A custom slug breaks the slug rules."""


class InvalidDestination(LinkbrokerError):
    """A destination URL is refused by the destination policy."""


class SlugTaken(LinkbrokerError):
    """A custom slug already names a link."""


class LinkNotFound(LinkbrokerError):
    """No link has this slug."""


class InvalidTerms(LinkbrokerError):
    """An expiry, click limit, fallback or redirect status a link cannot have.

    Also raised for a revert with no earlier destination. `field` names the
    option or API field that holds the value.
    """

    def __init__(self, message: str, value: object, field: str) -> None:
        super().__init__(message, value)
        self.field = field


class InvalidToken(LinkbrokerError):
    """An API request's token is missing, wrong or revoked."""


class TokenNotFound(LinkbrokerError):
    """No API token has this name."""


class InvalidImport(LinkbrokerError):
    """A file to import or restore, or one of its rows, cannot be used as it is."""


class RateLimited(LinkbrokerError):
    """Too many writes from one token or address; wait `retry_after` seconds."""

    def __init__(self, message: str, value: object, retry_after: float) -> None:
        super().__init__(message, value)
        self.retry_after = retry_after
