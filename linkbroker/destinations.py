"""The policy for what a link may point to.

A destination is stored in the ASCII form a `Location` header can carry as it is:
the host in punycode, everything else percent-encoded. Normalising is idempotent,
so a stored destination passes the policy again unchanged.

Bulk imports check a million destinations in one go, where the full check costs
tens of microseconds each. Most are plain ASCII URLs that the full check would
return unchanged, so a narrow pattern recognises those and takes a shorter road to
the same result; the decisions that depend on the host alone (its IDNA form, a
private address, the shortener itself, the blocklist) are remembered per host.
Anything the pattern does not cover, and every refusal, goes the full way, so that
the result and the message are always the full check's own.
"""

import ipaddress
import re
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import SplitResult, quote, urlsplit

import idna

from linkbroker.errors import ConfigError, InvalidDestination
from linkbroker.settings import Settings

MAX_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})

# Unreserved and reserved characters of RFC 3986, plus '%' so that existing escapes
# are kept; everything else in a path, query or fragment is percent-encoded.
_SAFE = "-._~:/?#[]@!$&'()*+,;=%"
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


# A URL the full check returns as it is, give or take its host's IDNA form, a port
# written with leading zeros and an empty query or fragment: a lower-case scheme,
# a host of lower-case ASCII letters, digits, dots and hyphens, and the rest made of
# characters that percent-encoding leaves alone, from the first '/', '?' or '#' on.
# No '[' or ']' (IPv6 literals and the checks urlsplit makes on them), no '%' that
# is not an escape, no '@'. The possessive runs take the rest a run of characters at
# a time, and never try the same characters again on a URL that fails.
_PLAIN = re.compile(
    r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"((?:[/?#](?:[A-Za-z0-9._~:/?#!$&'()*+,;=-]++|%[0-9A-Fa-f]{2})*+)?)"
)
# Hosts remembered at most; an import over more distinct hosts than this only loses
# the saving on the ones forgotten.
HOST_MEMORY = 65_536


def normalize(url: str) -> str:
    """Return `url` in its stored ASCII form; raise InvalidDestination if refused."""
    plain = _normalize_plain(url)
    return _normalize_fully(url) if plain is None else plain[0]


def _normalize_plain(url: str) -> tuple[str, str] | None:
    """Return the stored form of a plain URL and its host, or None to go the full way.

    The result equals `_normalize_fully`'s; a property test holds the two together.
    """
    found = _PLAIN.fullmatch(url) if len(url) <= MAX_LENGTH else None
    host = None if found is None else _plain_host(found.group(2))
    if found is None or host is None:
        return None
    scheme, hostname, port_text, rest = found.groups()
    # Most URLs come back exactly as given: no port, a host already in its stored
    # form, and no empty query or fragment for urlsplit to drop.
    if (
        host == hostname
        and port_text is None
        and not url.endswith(("?", "#"))
        and "?#" not in url
    ):
        return url, host
    result = _rebuilt(scheme, host, port_text, rest)
    return None if result is None else (result, host)


def _rebuilt(scheme: str, host: str, port_text: str | None, rest: str) -> str | None:
    port = None if port_text is None else int(port_text)
    if port is not None and not 0 < port <= 65535:
        return None
    netloc = host if port is None else f"{host}:{port}"

    # The way urlsplit cuts the rest: the fragment at the first '#', then the query
    # at the first '?'; an empty query or fragment is dropped with its mark.
    before_fragment, _, fragment = rest.partition("#")
    path, _, query = before_fragment.partition("?")
    result = f"{scheme}://{netloc}{path}"
    if query:
        result += "?" + query
    if fragment:
        result += "#" + fragment
    return result if len(result) <= MAX_LENGTH else None


@lru_cache(maxsize=HOST_MEMORY)
def _plain_host(hostname: str) -> str | None:
    # The full host check, remembered; None when it refuses, so that the full path
    # raises its own message naming the URL.
    try:
        return _ascii_host(hostname, hostname)
    except InvalidDestination:
        return None


def _normalize_fully(url: str) -> str:
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
    try:
        url.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDestination(
            f"The destination {url!r} holds {url[exc.start]!r}, which is not a valid "
            "Unicode character; check how it was copied.",
            url,
        ) from None
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
            f"The destination {url!r} has no host; give one, as in "
            "https://example.com/.",
            url,
        )
    if ":" in hostname:  # an IPv6 literal, which urlsplit has already checked
        if "%" in hostname:
            raise InvalidDestination(
                f"The destination {url!r} names an IPv6 zone ({hostname}), which "
                "only means something on one machine; remove the part after '%'.",
                url,
            )
        return f"[{hostname}]"
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


class Policy:
    """What this installation lets a link lead to, beyond the URL rules.

    Applied when a destination is stored (created or changed), from the CLI and the
    API alike; never when a link is served, so a redirect costs nothing extra.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = urlsplit(settings.base_url)
        self._own_host = (base.hostname or "").lower()
        self._blocked: frozenset[str] = frozenset()
        self._blocklist_stamp: float | None = None
        # Hosts found acceptable, for the blocklist they were judged against.
        self._accepted: set[str] = set()
        self._accepted_under: frozenset[str] | None = None

    def check(self, url: str) -> str:
        """Return `url` in its stored form; raise InvalidDestination if refused."""
        plain = _normalize_plain(url)
        if plain is not None and self._accepts(plain[1]):
            return plain[0]
        return self._check_fully(url)

    def _accepts(self, host: str) -> bool:
        """Tell whether `host` passed the host checks before, under this blocklist."""
        blocked = self._blocklist()
        if blocked is not self._accepted_under:
            self._accepted, self._accepted_under = set(), blocked
        if host in self._accepted:
            return True
        try:
            self._check_host(host, host)
        except InvalidDestination:
            return False
        if len(self._accepted) < HOST_MEMORY:
            self._accepted.add(host)
        return True

    def _check_fully(self, url: str) -> str:
        stored = _normalize_fully(url)
        parts = urlsplit(stored)
        self._check_host(url, (parts.hostname or "").lower())
        return stored

    def _check_host(self, url: str, host: str) -> None:
        if not self.settings.allow_private:
            _refuse_private(url, host)
        # Every port on the shortener's own host counts: a link there can only lead
        # to another short link, or loop.
        if host == self._own_host:
            raise InvalidDestination(
                f"The destination {url!r} points back at this shortener "
                f"({self.settings.base_url}), which would make a redirect loop.",
                url,
            )
        blocked = self._blocked_domain(host)
        if blocked:
            raise InvalidDestination(
                f"The destination {url!r} is on a blocked domain ({blocked}); "
                "links to it are not allowed here.",
                url,
            )

    def _blocked_domain(self, host: str) -> str | None:
        domains = self._blocklist()
        labels = host.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            if candidate in domains:
                return candidate
        return None

    def _blocklist(self) -> frozenset[str]:
        path = self.settings.blocklist
        if path is None:
            return self._blocked  # the same empty set each time
        try:
            stamp = path.stat().st_mtime
            if stamp != self._blocklist_stamp:
                self._blocked = _read_blocklist(path)
                self._blocklist_stamp = stamp
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"The blocklist {str(path)!r} cannot be read ({exc}); fix "
                "LINKBROKER_BLOCKLIST or the file.",
                path,
            ) from exc
        return self._blocked


def _read_blocklist(path: Path) -> frozenset[str]:
    domains = set()
    for line in path.read_text("utf-8").splitlines():
        domain = line.split("#", 1)[0].strip().lower().strip(".")
        if domain:
            try:
                domains.add(idna.encode(domain, uts46=True).decode("ascii"))
            except idna.IDNAError:
                domains.add(domain)
    return frozenset(domains)


def _refuse_private(url: str, host: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
            ipaddress.ip_address("127.0.0.1")
        )
    else:
        address = _literal_address(host)
    if address is None:
        return
    address = _embedded_ipv4(address) or address
    # Anything not routable on the public internet: private, loopback, link-local,
    # carrier-grade NAT, reserved, documentation and multicast ranges alike.
    if not address.is_global or address.is_multicast:
        raise InvalidDestination(
            f"The destination {url!r} points at a local or private address "
            f"({address}); links may not lead into private networks. Set "
            "LINKBROKER_ALLOW_PRIVATE=1 to allow it.",
            url,
        )


def _embedded_ipv4(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 one carries (mapped, 6to4, Teredo), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    return address.teredo[1] if address.teredo else None


def _literal_address(
    host: str,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    # Browsers also read 2130706433, 0x7f000001 and 0177.0.0.1 as 127.0.0.1.
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}")
