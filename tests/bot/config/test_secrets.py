"""Secrets: environment, .env beside the config, $CREDENTIALS_DIRECTORY; values never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config.secrets import MissingSecret, Secrets


def test_from_the_environment():
    secrets = Secrets({"KAKAO_REST_API_KEY": "rest-key-1"})
    assert secrets.get("KAKAO_REST_API_KEY") == "rest-key-1"
    assert secrets.get("KAKAO_CLIENT_SECRET") is None
    assert secrets.require("KAKAO_REST_API_KEY") == "rest-key-1"


def test_load_reads_the_process_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KAKAO_REST_API_KEY", "from-os-environ")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("KAKAO_CLIENT_SECRET", raising=False)
    (tmp_path / ".env").write_text("KAKAO_REST_API_KEY=from-dotenv\nKAKAO_CLIENT_SECRET=from-dotenv\n",
                                   encoding="utf-8")
    secrets = Secrets.load(tmp_path)
    assert secrets.get("KAKAO_REST_API_KEY") == "from-os-environ"
    assert secrets.get("KAKAO_CLIENT_SECRET") == "from-dotenv"
    assert "KAKAO_CLIENT_SECRET" not in os.environ  # the process environment is left alone


def test_dotenv_beside_the_config_is_loaded(tmp_path):
    (tmp_path / ".env").write_text('KAKAO_REST_API_KEY=from-dotenv\nexport BOT_SECRET_KEY="quoted key"\n# a comment\n',
                                   encoding="utf-8")
    secrets = Secrets.load(tmp_path, environ={})
    assert secrets.get("KAKAO_REST_API_KEY") == "from-dotenv"
    assert secrets.get("BOT_SECRET_KEY") == "quoted key"


def test_dotenv_never_overrides_the_real_environment(tmp_path):
    (tmp_path / ".env").write_text("KAKAO_REST_API_KEY=from-dotenv\nKAKAO_CLIENT_SECRET=dotenv-secret\n",
                                   encoding="utf-8")
    secrets = Secrets.load(tmp_path, environ={"KAKAO_REST_API_KEY": "from-env"})
    assert secrets.get("KAKAO_REST_API_KEY") == "from-env"
    assert secrets.get("KAKAO_CLIENT_SECRET") == "dotenv-secret"


def test_dotenv_elsewhere_is_not_loaded(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("KAKAO_REST_API_KEY=from-dotenv\n", encoding="utf-8")
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    monkeypatch.chdir(tmp_path)  # not the working directory's .env: the config folder's
    assert Secrets.load(config_dir, environ={}).get("KAKAO_REST_API_KEY") is None


def test_a_dotenv_folder_is_ignored(tmp_path):
    (tmp_path / ".env").mkdir()
    assert Secrets.load(tmp_path, environ={"A": "1"}).get("A") == "1"


def test_credentials_directory_wins_over_the_environment(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "bot_secret_key").write_text("from-credential\n", encoding="utf-8")
    secrets = Secrets.load(tmp_path, environ={"BOT_SECRET_KEY": "from-env", "KAKAO_REST_API_KEY": "env-rest",
                                              "CREDENTIALS_DIRECTORY": str(credentials)})
    assert secrets.get("BOT_SECRET_KEY") == "from-credential"  # trailing newline stripped
    assert secrets.get("KAKAO_REST_API_KEY") == "env-rest"  # no file: the environment


def test_credentials_directory_wins_over_dotenv_and_may_come_from_it(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "kakao_client_secret").write_text("from-credential", encoding="utf-8")
    (tmp_path / ".env").write_text(f"CREDENTIALS_DIRECTORY={credentials}\nKAKAO_CLIENT_SECRET=from-dotenv\n",
                                   encoding="utf-8")
    assert Secrets.load(tmp_path, environ={}).get("KAKAO_CLIENT_SECRET") == "from-credential"


def test_each_credential_is_read_once(tmp_path):
    # systemd's credentials do not change while the service runs; the webhook route asks for its app's
    # secret on every delivery, so the file is not read again (nor found missing again) each time.
    (tmp_path / "shopify_api_secret").write_text("first", encoding="utf-8")
    secrets = Secrets({"KAKAO_CLIENT_SECRET": "from-env"}, str(tmp_path))
    assert secrets.get("SHOPIFY_API_SECRET") == "first" and secrets.get("KAKAO_CLIENT_SECRET") == "from-env"
    (tmp_path / "shopify_api_secret").write_text("second", encoding="utf-8")
    (tmp_path / "kakao_client_secret").write_text("a file made later", encoding="utf-8")
    assert secrets.get("SHOPIFY_API_SECRET") == "first" and secrets.get("KAKAO_CLIENT_SECRET") == "from-env"
    assert secrets.require("SHOPIFY_API_SECRET") == "first"


def test_credential_file_names_are_lower_case(tmp_path):
    (tmp_path / "BOT_SECRET_KEY").write_text("upper-case-file", encoding="utf-8")
    secrets = Secrets({"BOT_SECRET_KEY": "from-env"}, str(tmp_path))
    assert secrets.get("BOT_SECRET_KEY") == "from-env"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_empty_values_are_none(tmp_path, value):
    assert Secrets({"KAKAO_CLIENT_SECRET": value}).get("KAKAO_CLIENT_SECRET") is None
    (tmp_path / "kakao_client_secret").write_text(value, encoding="utf-8")
    assert Secrets({}, str(tmp_path)).get("KAKAO_CLIENT_SECRET") is None
    (tmp_path / ".env").write_text(f"KAKAO_CLIENT_SECRET={value.strip()}\n", encoding="utf-8")
    assert Secrets.load(tmp_path, environ={}).get("KAKAO_CLIENT_SECRET") is None
    with pytest.raises(MissingSecret):
        Secrets({"KAKAO_CLIENT_SECRET": value}).require("KAKAO_CLIENT_SECRET")


def test_values_are_stripped():
    assert Secrets({"KAKAO_REST_API_KEY": "  key-with-spaces \n"}).get("KAKAO_REST_API_KEY") == "key-with-spaces"


def test_require_names_the_variable_not_the_values():
    secrets = Secrets({"KAKAO_REST_API_KEY": "present-secret-value", "BOT_SECRET_KEY": "another-secret"})
    with pytest.raises(MissingSecret) as info:
        secrets.require("KAKAO_CLIENT_SECRET")
    message = str(info.value)
    assert info.value.name == "KAKAO_CLIENT_SECRET"
    assert "KAKAO_CLIENT_SECRET" in message and ".env" in message and "credential" in message
    assert "present-secret-value" not in message and "another-secret" not in message


def test_require_with_a_reason():
    with pytest.raises(MissingSecret) as info:
        Secrets({}).require("KAKAO_REST_API_KEY", "the Kakao app's REST API key")
    assert str(info.value) == "secret KAKAO_REST_API_KEY is missing: the Kakao app's REST API key"


def test_repr_and_str_hide_the_values(tmp_path):
    (tmp_path / "bot_secret_key").write_text("credential-secret-value", encoding="utf-8")
    secrets = Secrets({"KAKAO_REST_API_KEY": "env-secret-value", "CREDENTIALS_DIRECTORY": str(tmp_path)},
                      str(tmp_path))
    for shown in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert "env-secret-value" not in shown
        assert "credential-secret-value" not in shown
        assert "KAKAO_REST_API_KEY" not in shown
    assert repr(secrets) == "Secrets(<hidden>)"


def test_the_given_environment_is_copied(tmp_path):
    environ = {"KAKAO_REST_API_KEY": "before"}
    secrets = Secrets.load(Path(tmp_path), environ=environ)
    environ["KAKAO_REST_API_KEY"] = "after"
    assert secrets.get("KAKAO_REST_API_KEY") == "before"
    (tmp_path / ".env").write_text("BOT_SECRET_KEY=x\n", encoding="utf-8")
    Secrets.load(tmp_path, environ=environ)
    assert "BOT_SECRET_KEY" not in environ  # loading .env does not write into the caller's mapping
