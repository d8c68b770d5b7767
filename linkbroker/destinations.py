"""The policy for what a link may point to.

A destination is stored in the ASCII form a `Location` header can carry as it is:
the host in punycode, everything else percent-encoded. Normalising is idempotent,
so a stored destination passes the policy again unchanged.
"""

import ipaddress
import re
import socket
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

    def check(self, url: str) -> str:
        """Return `url` in its stored form; raise InvalidDestination if refused."""
        stored = normalize(url)
        parts = urlsplit(stored)
        host = (parts.hostname or "").lower()
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
        return stored

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
            return frozenset()
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
