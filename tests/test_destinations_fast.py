"""The short road for plain URLs gives exactly what the full check gives."""

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from linkbroker.destinations import Policy, _normalize_fully, _normalize_plain
from linkbroker.errors import InvalidDestination
from linkbroker.settings import Settings

# Pieces chosen to sit on the edges of the plain pattern: hyphens where IDNA refuses
# them, punycode, numbers that read as addresses, ports past the range, marks that
# end a part, escapes and stray percent signs.
_LABELS = st.sampled_from(
    [
        *("example", "a", "xn--bcher-kva", "xn--zz", "ab--cd", "-a", "a-", "127"),
        *("0x7f", "localhost", "s", "blocked", "1", "x" * 63, "x" * 64, "", "ü"),
    ]
)
_HOSTS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_PORTS = st.sampled_from(["", ":80", ":0", ":00080", ":65535", ":65536", ":", ":1x"])
_REST = st.lists(
    st.sampled_from([*"/?#%aZ09-._~:@!$&'()*+,;=[] ", "%41", "%zz"]), max_size=30
).map("".join)
_SCHEMES = st.sampled_from(["http", "https", "HTTP", "ftp", "http:", "https:/"])


def _outcome(check: Callable[[str], str], url: str) -> str:
    try:
        return "stored " + check(url)
    except InvalidDestination as exc:
        return "refused " + str(exc)


@st.composite
def _edgy_urls(draw: st.DrawFn) -> str:
    return (
        f"{draw(_SCHEMES)}://{draw(_HOSTS)}{draw(_PORTS)}"
        f"{draw(st.sampled_from(['', '/', '?', '#']))}{draw(_REST)}"
    )


@settings(max_examples=800)
@given(st.one_of(_edgy_urls(), urls(), st.text(max_size=60)))
@example("http://example.com:123456")
@example("http://example.com/p?#f")
@example("https://example.com./x?")
def test_plain_road_equals_the_full_check(url: str) -> None:
    plain = _normalize_plain(url)
    if plain is not None:
        assert _outcome(_normalize_fully, url) == "stored " + plain[0]


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    folder = tmp_path_factory.mktemp("policy")
    blocklist = folder / "blocked.txt"
    blocklist.write_text("blocked.example\nblocked\n", "utf-8")
    return Policy(
        Settings.load(
            db_path=folder / "l.db",
            cache_dir=folder / "c",
            environ={
                "LINKBROKER_BASE_URL": "https://s.example",
                "LINKBROKER_BLOCKLIST": str(blocklist),
            },
        )
    )


@settings(max_examples=300)
@given(st.lists(st.one_of(_edgy_urls(), urls()), min_size=1, max_size=6))
def test_policy_with_its_memory_decides_as_the_full_policy(
    policy: Policy, batch: list[str]
) -> None:
    # The same URL twice: the second answer comes from what the first remembered.
    for url in batch + batch:
        assert _outcome(policy.check, url) == _outcome(policy._check_fully, url)
