"""Settings: defaults, TOML file, environment, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import DEFAULT_DATABASE_URL, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMNICRM_DATABASE_URL", "OMNICRM_PORT", "OMNICRM_HOST", "OMNICRM_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_serve_sqlite_on_localhost() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert not settings.is_postgresql


def test_environment_wins_over_the_config_file_and_flags_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "omnicrm.toml"
    config.write_text('port = 9000\nhost = "192.0.2.10"\ndefault_region = "de"\n')
    from_file = load_settings(config)
    assert (from_file.port, from_file.host, from_file.default_region) == (9000, "192.0.2.10", "DE")
    monkeypatch.setenv("OMNICRM_PORT", "9100")
    assert load_settings(config).port == 9100
    assert load_settings(config, port=9200).port == 9200


def test_config_file_may_use_an_omnicrm_table(tmp_path: Path) -> None:
    config = tmp_path / "all.toml"
    config.write_text('[omnicrm]\ndatabase_url = "postgresql+asyncpg://u@db/crm"\n')
    assert load_settings(config).is_postgresql


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = 70000", "port"),
        ('database_url = "mysql://x"', "database_url"),
        ('default_region = "XX"', "unknown region"),
        ("unknown_key = 1", "unknown_key"),
        ("port = [", "not valid TOML"),
    ],
)
def test_invalid_config_gives_one_clear_message(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_invalid_environment_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICRM_PORT", "eighty")
    with pytest.raises(SettingsError, match="port"):
        load_settings()


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml")
