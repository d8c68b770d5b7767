from pathlib import Path

import pytest

from linkbroker.errors import ConfigError
from linkbroker.settings import Settings


def test_settings_survive_the_trip_through_a_child_environment(tmp_path: Path) -> None:
    settings = Settings.load(
        db_path=tmp_path / "l.db",
        cache_dir=tmp_path / "c",
        environ={
            "LINKBROKER_FLUSH_INTERVAL": "0.5",
            "LINKBROKER_RATE_LIMIT": "0",
            "LINKBROKER_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "LINKBROKER_ALLOW_PRIVATE": "yes",
            "LINKBROKER_BLOCKLIST": str(tmp_path / "blocked.txt"),
        },
    )
    assert settings.flush_interval == 0.5
    assert settings.slug_length == 7
    assert isinstance(settings.slug_length, int)
    assert Settings.load(environ=settings.environ()) == settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LINKBROKER_SLUG_LENGTH", "3"),
        ("LINKBROKER_FLUSH_INTERVAL", "soon"),
        ("LINKBROKER_MAX_BODY", "1.5"),
        ("LINKBROKER_WORKER_TIMEOUT", "0.5"),
        ("LINKBROKER_ALLOW_PRIVATE", "maybe"),
        ("LINKBROKER_TRUSTED_PROXIES", "not-an-address"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name if "PROXIES" not in name else value):
        Settings.load(db_path=tmp_path / "l.db", environ={name: value})
