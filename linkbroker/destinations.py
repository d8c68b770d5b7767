"""The policy for what a link may point to.

A destination is stored in the ASCII form a `Location` header can carry as it is:
the host in punycode, everything else percent-encoded. Normalising is idempotent,
so a stored destination passes the policy again unchanged.
"""

import re
from urllib.parse import SplitResult, quote, urlsplit

from linkbroker.errors import InvalidDestination

MAX_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})

# Unreserved and reserved characters of RFC 3986, plus '%' so that existing escapes
# are kept; everything else in a path, query or fragment is percent-encoded.
_SAFE = "-._~:/?#[]@!$&'()*+,;=%"
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize(url: str) -> str:
    """Return `url` in its stored ASCII form; raise InvalidDestination if refused."""
    _check_characters(url)
    parts = _split(url)
    host = _ascii_host(url, parts.hostname or "")
    port = _port(url, parts)
    netloc = host if port is None else f"{host}:{port}"
    result = f"{parts.scheme.lower()}://{netloc}{_encode(parts.path)}"
    if parts.query:
        result += "?" + _encode(parts.query)
    if parts.fragment:
        result += "#" + _encode(parts.fragment)

    if len(result) > MAX_LENGTH:
        raise InvalidDestination(
            f"The destination {url[:60]!r}… is {len(result)} characters long once "
            f"encoded; use at most {MAX_LENGTH}.",
            url,
        )
    return result


def _check_characters(url: str) -> None:
    if not url:
        raise InvalidDestination("The destination is empty; give an http(s) URL.", url)
    if len(url) > MAX_LENGTH:
        raise InvalidDestination(
            f"The destination {url[:60]!r}… is {len(url)} characters long; "
            f"use at most {MAX_LENGTH}.",
            url,
        )
    bad = _CONTROL_OR_SPACE.search(url)
    if bad is not None:
        raise InvalidDestination(
            f"The destination {url!r} contains {bad.group()!r} at position "
            f"{bad.start()}; remove spaces and control characters, or "
            "percent-encode them (a space is %20).",
            url,
        )


def _split(url: str) -> SplitResult:
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise InvalidDestination(
            f"The destination {url!r} is not an absolute URL; "
            "start it with http:// or https://.",
            url,
        )
    if scheme.group(1).lower() not in ALLOWED_SCHEMES:
        raise InvalidDestination(
            f"The destination {url!r} uses the scheme {scheme.group(1)!r}; "
            "only http and https links are allowed.",
            url,
        )
    if not url[scheme.end() :].startswith("//"):
        raise InvalidDestination(
            f"The destination {url!r} has no host; write it as "
            f"{scheme.group(1).lower()}://host/path.",
            url,
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidDestination(
            f"The destination {url!r} is not a valid URL ({exc}); check its host.",
            url,
        ) from exc
    if parts.username is not None or parts.password is not None:
        raise InvalidDestination(
            f"The destination {url!r} carries a user name or password; "
            "remove the part before '@'.",
            url,
        )
    return parts


def _ascii_host(url: str, hostname: str) -> str:
    if not hostname:
        raise InvalidDestination(
            f"The destination {url!r} has no host; give one, as in https://example.com/.",
            url,
        )
    if ":" in hostname:  # an IPv6 literal, which urlsplit has already checked
        return f"[{hostname}]"
    import idna  # only when a link is made: resolving never needs it

    try:
        host = idna.encode(hostname.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidDestination(
            f"The destination {url!r} has an invalid host {hostname!r} ({exc}); "
            "check its spelling.",
            url,
        ) from exc
    host = host.lower()
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise InvalidDestination(
            f"The destination {url!r} has an invalid host {hostname!r}; "
            "a host is made of letters, digits, '-' and '.'.",
            url,
        )
    return host


def _encode(part: str) -> str:
    return quote(_STRAY_PERCENT.sub("%25", part), safe=_SAFE)


def _port(url: str, parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidDestination(
            f"The destination {url!r} has an invalid port; use a number from 1 to "
            "65535.",
            url,
        )
    return port
