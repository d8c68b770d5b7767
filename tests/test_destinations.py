import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.provisional import urls

from linkbroker.destinations import MAX_LENGTH, normalize
from linkbroker.errors import InvalidDestination


@pytest.mark.parametrize(
    ("given_url", "stored"),
    [
        pytest.param("https://example.com/a?b=c#d", "https://example.com/a?b=c#d"),
        pytest.param("HTTP://Example.COM/Path", "http://example.com/Path", id="case"),
        pytest.param(
            "https://bücher.example/straße",
            "https://xn--bcher-kva.example/stra%C3%9Fe",
            id="idn and unicode path",
        ),
        pytest.param(
            "https://例え.jp/?q=日本",
            "https://xn--r8jz45g.jp/?q=%E6%97%A5%E6%9C%AC",
        ),
        pytest.param("https://a.example/%7Euser", "https://a.example/%7Euser"),
        pytest.param(
            "https://a.example/100%", "https://a.example/100%25", id="stray %"
        ),
        pytest.param("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
        pytest.param("http://[2001:db8::1]/", "http://[2001:db8::1]/", id="ipv6"),
        pytest.param("https://a.example./", "https://a.example/", id="trailing dot"),
    ],
)
def test_accepted_destinations_are_stored_in_ascii(given_url: str, stored: str) -> None:
    assert normalize(given_url) == stored
    assert stored.isascii()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("javascript:alert(1)", "scheme 'javascript'", id="javascript"),
        pytest.param("data:text/html,hi", "scheme 'data'", id="data"),
        pytest.param("file:///etc/passwd", "scheme 'file'", id="file"),
        pytest.param("ftp://example.com/", "scheme 'ftp'", id="ftp"),
        pytest.param("example.com/page", "not an absolute URL", id="no scheme"),
        pytest.param("/relative/path", "not an absolute URL", id="relative"),
        pytest.param("//example.com/x", "not an absolute URL", id="scheme-relative"),
        pytest.param("https:/example.com", "no host", id="one slash"),
        pytest.param("https://", "no host", id="empty host"),
        pytest.param("https://user:pw@example.com/", "user name", id="credentials"),
        pytest.param("https://user@example.com/", "user name", id="user"),
        pytest.param("https://exa mple.com/", "' '", id="space"),
        pytest.param("https://example.com/a b", "' '", id="space in path"),
        pytest.param("https://example.com/\r\nSet-Cookie: x", "'\\r'", id="crlf"),
        pytest.param("https://example.com/\x00", "'\\x00'", id="nul"),
        pytest.param(
            "https://example.com/\ud800", "not a valid Unicode", id="surrogate"
        ),
        pytest.param("https://example.com:99999/", "invalid port", id="port"),
        pytest.param(
            "http://[2606:4700::1%25%C3%A9]/", "not a valid URL", id="zone id"
        ),
        pytest.param("http://[2606:4700::1%25é]/", "IPv6 zone", id="zone id unicode"),
        pytest.param("http://[fe80::1%eth0]/", "IPv6 zone", id="zone id raw"),
        pytest.param("https://exa_mple.com/", "invalid host", id="underscore host"),
        pytest.param("https://a..b/", "invalid host", id="empty label"),
        pytest.param("https://a.example\\@evil.example/", "user name", id="backslash"),
        pytest.param("https://a.example\\evil/", "invalid host", id="backslash host"),
        pytest.param("https://a.example/" + "x" * MAX_LENGTH, "at most", id="too long"),
    ],
)
def test_refused_destinations_say_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(InvalidDestination, match=re.escape(reason)) as caught:
        normalize(url)
    assert caught.value.value == url


@given(urls())
def test_normalizing_is_idempotent(url: str) -> None:
    try:
        stored = normalize(url)
    except InvalidDestination:
        return
    assert normalize(stored) == stored
    assert stored.isascii()
    assert len(stored) <= MAX_LENGTH


@given(st.text(max_size=300))
def test_any_text_is_either_refused_cleanly_or_stored_safely(text: str) -> None:
    try:
        stored = normalize(text)
    except InvalidDestination as exc:
        assert str(exc)
        return
    assert stored.startswith(("http://", "https://"))
    assert stored.isascii()
    assert not any(c in stored for c in "\r\n\t \x00")
