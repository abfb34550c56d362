"""Settings come from the environment, typed; bad values name the variable."""

from __future__ import annotations

import pytest

from mirage.backends import mask_url
from mirage.errors import SettingsError
from mirage.settings import Settings


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s.database_url is None and s.redis_url is None
    assert str(s.state_dir) == ".mirage"
    assert s.openai_model == "gpt-4o-mini"


def test_secrets_never_print() -> None:
    s = Settings.from_env({"OPENAI_API_KEY": "sk-secretsecretsecret", "DATABASE_URL": "postgresql://u:pw@h/db"})
    assert "sk-secret" not in repr(s) and "pw@" not in repr(s)


@pytest.mark.parametrize(
    ("var", "value"),
    [("MIRAGE_PORT", "eighty"), ("MIRAGE_PORT", "70000"), ("MIRAGE_LOG_LEVEL", "LOUD"), ("SECURE_COOKIES", "maybe")],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env({var: value})
    assert str(e.value).startswith(f"environment variable {var}:")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://mirage:pw@db:5432/x", "postgresql://mirage:***@db:5432/x"),
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("postgresql://postgres:@/postgres?host=/tmp/x", "postgresql://postgres:@/postgres?host=/tmp/x"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("postgresql://h/db?password=pw&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
    ],
)
def test_mask_url_hides_passwords_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_dotenv_fills_unset_variables_without_overriding_the_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text('# local\nexport MIRAGE_PORT=9090\nOPENAI_MODEL="gpt-test"\n\nMIRAGE_LOG_LEVEL=DEBUG\n')
    monkeypatch.setenv("MIRAGE_LOG_LEVEL", "WARNING")
    s = Settings.from_env(dotenv=env)
    assert s.port == 9090 and s.openai_model == "gpt-test"
    assert s.log_level == "WARNING"  # the real environment wins


def test_a_malformed_dotenv_line_says_where(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text("MIRAGE_PORT=1\nthis is not a setting\n")
    with pytest.raises(SettingsError) as e:
        Settings.from_env(dotenv=env)
    assert f"{env}:2" in str(e.value) and "KEY=VALUE" in str(e.value)
