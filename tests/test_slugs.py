import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkbroker import slugs
from linkbroker.errors import InvalidSlug


def test_generated_slugs_use_the_alphabet_and_length() -> None:
    for length in (4, 7, 12):
        slug = slugs.generate(length)
        assert len(slug) == length
        assert set(slug) <= set(slugs.ALPHABET)


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1lIio") & set(slugs.ALPHABET)


@pytest.mark.parametrize(
    "slug",
    [
        pytest.param("a", id="one character"),
        pytest.param("A" * 64, id="sixty-four characters"),
        pytest.param("My_Link-2", id="underscore and dash"),
    ],
)
def test_valid_custom_slugs_are_kept_as_given(slug: str) -> None:
    assert slugs.validate(slug) == slug
    assert slugs.is_well_formed(slug)


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("a" * 65, "at most 64", id="too long"),
        pytest.param("a b", "outside", id="space"),
        pytest.param("ünï", "outside", id="non-ascii"),
        pytest.param("a/b", "outside", id="slash"),
        pytest.param("x.y", "outside", id="dot"),
        pytest.param("api", "reserved", id="api"),
        pytest.param("healthz", "reserved", id="healthz"),
        pytest.param("API", "reserved", id="reserved in capitals"),
    ],
)
def test_invalid_custom_slugs_are_refused_with_a_reason(slug: str, reason: str) -> None:
    with pytest.raises(InvalidSlug, match=reason) as caught:
        slugs.validate(slug)
    assert caught.value.value == slug
    assert not slugs.is_well_formed(slug)


@given(st.text(max_size=80))
def test_validate_and_is_well_formed_agree(text: str) -> None:
    try:
        slugs.validate(text)
    except InvalidSlug:
        assert not slugs.is_well_formed(text)
    else:
        assert slugs.is_well_formed(text)
