"""`shopify install | connect | add-token | shops` through the command line; Shopify mocked with `responses`
(any request not mocked fails, so "no request" is checked by `rsps.calls`)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from bot.connect.webhook_needs import Synced
from bot.shopify.subscriptions import webhook_uri
import responses
from click.testing import CliRunner, Result
from sqlalchemy import text

from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.secrets import Secrets
from bot.shopify.client import ShopifyTokenAnswer

SHOP = "some-shop.myshopify.com"
TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
GRAPHQL_URL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
API_KEY, API_SECRET = "cli-client-id", "cli-client-secret"
SECOND_KEY, SECOND_SECRET = "second-client-id", "second-client-secret"
PASTED = "shpat_pastedtoken0123456789"
CC_TOKEN = "shpat_clientcredentials987"
SEOUL = ZoneInfo("Asia/Seoul")

CONFIG = """\
[database]
url = "sqlite:///cli.sqlite3"

[server]
public_url = "https://bot.example.com/"

[[shopify.apps]]
name = "default"
scopes = ["read_orders", "read_products"]

[[shopify.apps]]
name = "second"
api_key_env = "SECOND_API_KEY"
api_secret_env = "SECOND_API_SECRET"
scopes = ["read_orders"]
"""


@pytest.fixture
def env(secret_key: str) -> dict[str, str | None]:
    return {"BOT_SECRET_KEY": secret_key, "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": API_SECRET,
            "SECOND_API_KEY": SECOND_KEY, "SECOND_API_SECRET": SECOND_SECRET, "SHOP_TOKEN": PASTED,
            # Nothing from the developer's own environment may redirect these runs.
            "BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None}


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config(CONFIG)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def subscriptions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """`connect` and `add-token` subscribe the shop to webhooks after storing it; that is tested against
    the Shopify stand-in in test_shopify_subscriptions.py. Here it is only recorded, so that `rsps.calls`
    holds exactly the requests these tests are about."""
    made: list[tuple[str, str]] = []

    def sync_shop(app: Any, gql: Any, shop: str, app_name: str) -> Synced:
        uri = webhook_uri(app.config.server.public_url, app_name)
        made.append((gql.shop, uri))
        return Synced(shop, uri)

    monkeypatch.setattr("bot.cli.shopify.sync_shop", sync_shop)
    return made


class Cli:
    """Runs the CLI in-process; keeps every output for the secrecy checks."""

    def __init__(self, env: dict[str, str | None], config: Path):
        self.env, self.config, self.outputs = env, config, []

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            result = CliRunner().invoke(cli, ["--config", str(self.config), *args], env={**self.env, **(env or {})},
                                        catch_exceptions=False)
        finally:  # the CLI installs its own stderr handler: put pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)
        self.outputs.append(result.output)
        return result


@pytest.fixture
def run(env: dict[str, str | None], config: Path) -> Cli:
    return Cli(env, config)


@pytest.fixture
def app(env: dict[str, str | None], config: Path) -> Iterator[App]:
    """An App on the CLI's database, to look at (and seed) what the commands store."""
    built = App(load_config(config), Secrets({k: v for k, v in env.items() if v is not None}))
    built.db.migrate()
    yield built
    built.close()


def form_of(call: Any) -> dict[str, str]:
    body = call.request.body
    return dict(parse_qsl(body.decode() if isinstance(body, bytes) else body, keep_blank_values=True))


def local(instant: datetime) -> str:
    return instant.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M %Z")


BAD_SHOPS = ["evil.com", "some-shop.myshopify.com.evil.com", "https://some-shop.myshopify.com",
             "some-shop.myshopify.com/admin", "evil.com/.myshopify.com", "a.b.myshopify.com",
             "some-shop.myshopify.com:443", "some_shop.myshopify.com", "myshopify.com"]


# -- install ------------------------------------------------------------------------------------


def test_install_prints_the_install_url_and_how_to_use_it(run, rsps):
    result = run("shopify", "install", "Some-Shop.myshopify.com")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"https://bot.example.com/shopify/default/install?shop={SHOP}"
    assert "browser" in result.output and "python -m bot run" in result.output
    assert len(rsps.calls) == 0


def test_install_with_another_app_uses_its_route(run, rsps):
    result = run("shopify", "install", SHOP, "--app", "second")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"https://bot.example.com/shopify/second/install?shop={SHOP}"


@pytest.mark.parametrize("command", [["install"], ["connect"], ["add-token", "--token-env", "SHOP_TOKEN"]])
@pytest.mark.parametrize("shop", BAD_SHOPS)
def test_a_shop_that_is_not_a_shop_is_a_usage_error_and_makes_no_request(run, rsps, app, command, shop):
    result = run("shopify", command[0], shop, *command[1:])
    assert result.exit_code == 2, result.output
    assert "is not a shop domain like my-store.myshopify.com" in result.output
    assert len(rsps.calls) == 0
    assert app.shopify_tokens.all_status() == []


def test_install_without_the_app_secret_exits_2_naming_the_variable(run, rsps):
    result = run("shopify", "install", SHOP, env={"SHOPIFY_API_SECRET": None})
    assert result.exit_code == 2
    assert "SHOPIFY_API_SECRET" in result.output
    second = run("shopify", "install", SHOP, "--app", "second", env={"SECOND_API_KEY": None})
    assert second.exit_code == 2 and "SECOND_API_KEY" in second.output


def test_install_with_an_unknown_app_exits_2_listing_the_apps(run, rsps):
    result = run("shopify", "install", SHOP, "--app", "nope")
    assert result.exit_code == 2
    assert "'nope'" in result.output and "default, second" in result.output


# -- connect ------------------------------------------------------------------------------------


def test_connect_stores_a_client_credentials_token_and_warns_about_missing_scopes(run, rsps, app):
    rsps.post(TOKEN_URL, json={"access_token": CC_TOKEN, "scope": "read_orders", "expires_in": 86399})
    result = run("shopify", "connect", SHOP)

    assert result.exit_code == 0, result.output
    assert [form_of(call) for call in rsps.calls] == [{"client_id": API_KEY, "client_secret": API_SECRET,
                                                       "grant_type": "client_credentials"}]
    status = app.shopify_tokens.status(SHOP, "default")
    assert (status.mode, status.status, status.scopes) == ("client_credentials", "active", ("read_orders",))
    assert abs(status.access_expires_at - (datetime.now(timezone.utc) + timedelta(seconds=86399))) < timedelta(minutes=1)
    assert app.shopify_tokens.access_token(SHOP) == CC_TOKEN
    assert "warning" in result.output and "read_products" in result.output
    assert "read_orders" in result.output and local(status.access_expires_at) in result.output
    assert CC_TOKEN not in result.output


def test_connect_with_all_scopes_granted_does_not_warn(run, rsps, app):
    rsps.post(TOKEN_URL, json={"access_token": CC_TOKEN, "scope": "write_orders,read_products", "expires_in": 86399})
    result = run("shopify", "connect", SHOP)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # write_orders implies read_orders


def test_connect_with_another_app_uses_its_own_credentials(run, rsps, app):
    rsps.post(TOKEN_URL, json={"access_token": CC_TOKEN, "scope": "read_orders", "expires_in": 86399})
    result = run("shopify", "connect", SHOP, "--app", "second")
    assert result.exit_code == 0, result.output
    assert form_of(rsps.calls[0])["client_id"] == SECOND_KEY
    assert form_of(rsps.calls[0])["client_secret"] == SECOND_SECRET
    assert [(s.app, s.shop) for s in app.shopify_tokens.all_status()] == [("second", SHOP)]


def test_connect_refused_credentials_exit_1_and_store_nothing(run, rsps, app):
    rsps.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "Client authentication failed"})
    result = run("shopify", "connect", SHOP)
    assert result.exit_code == 1
    assert "invalid_client" in result.output or "credentials" in result.output
    assert SHOP in result.output and API_SECRET not in result.output
    assert len(rsps.calls) == 1
    assert app.shopify_tokens.all_status() == []


# -- add-token ----------------------------------------------------------------------------------


def graphql_ok(name: str = "Some Shop", scopes: tuple[str, ...] = ("read_orders", "read_products")) -> dict:
    return {"data": {"shop": {"name": name},
                     "currentAppInstallation": {"accessScopes": [{"handle": scope} for scope in scopes]}},
            "extensions": {"cost": {"requestedQueryCost": 2, "actualQueryCost": 2,
                                    "throttleStatus": {"maximumAvailable": 2000, "currentlyAvailable": 1998,
                                                       "restoreRate": 100}}}}


def test_add_token_checks_the_token_then_stores_it_as_legacy(run, rsps, app):
    rsps.post(GRAPHQL_URL, json=graphql_ok())
    result = run("shopify", "add-token", SHOP, "--token-env", "SHOP_TOKEN")

    assert result.exit_code == 0, result.output
    (call,) = rsps.calls
    assert call.request.headers["X-Shopify-Access-Token"] == PASTED
    assert "shop" in json.loads(call.request.body)["query"]
    status = app.shopify_tokens.status(SHOP, "default")
    assert (status.mode, status.status, status.access_expires_at) == ("legacy", "active", None)
    assert status.scopes == ("read_orders", "read_products")
    assert app.shopify_tokens.access_token(SHOP) == PASTED
    assert "Some Shop" in result.output and "warning" not in result.output
    assert PASTED not in result.output


def test_add_token_reads_the_variable_from_env_file_beside_the_config(run, rsps, app, config):
    (config.parent / ".env").write_text("DOTENV_TOKEN=shpat_fromdotenvfile\n", encoding="utf-8")
    rsps.post(GRAPHQL_URL, json=graphql_ok(scopes=("read_orders",)))
    result = run("shopify", "add-token", SHOP, "--token-env", "DOTENV_TOKEN")
    assert result.exit_code == 0, result.output
    assert rsps.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_fromdotenvfile"
    assert app.shopify_tokens.access_token(SHOP) == "shpat_fromdotenvfile"
    assert "warning" in result.output and "read_products" in result.output  # configured, not granted


def test_add_token_with_the_variable_missing_exits_2_naming_it(run, rsps, app):
    result = run("shopify", "add-token", SHOP, "--token-env", "NOT_SET_ANYWHERE")
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE" in result.output
    assert len(rsps.calls) == 0
    assert app.shopify_tokens.all_status() == []


@pytest.mark.parametrize("status", [401, 403])
def test_add_token_refused_exits_1_and_stores_nothing(run, rsps, app, status):
    rsps.post(GRAPHQL_URL, status=status, json={"errors": "[API] Invalid API key or access token"})
    result = run("shopify", "add-token", SHOP, "--token-env", "SHOP_TOKEN")
    assert result.exit_code == 1
    assert "token refused" in result.output and "SHOP_TOKEN" in result.output
    assert PASTED not in result.output
    assert len(rsps.calls) == 1
    assert app.shopify_tokens.all_status() == []


def test_add_token_replaces_a_dead_install_of_the_same_app(run, rsps, app):
    app.shopify_tokens.store_legacy("default", SHOP, "shpat_oldrevoked", "read_orders")
    app.shopify_tokens.rejected(SHOP, "default", "HTTP 401")
    rsps.post(GRAPHQL_URL, json=graphql_ok())
    assert run("shopify", "add-token", SHOP, "--token-env", "SHOP_TOKEN").exit_code == 0
    assert app.shopify_tokens.status(SHOP, "default").status == "active"
    assert app.shopify_tokens.access_token(SHOP) == PASTED


# -- shops --------------------------------------------------------------------------------------


def test_shops_when_none_are_connected(run, rsps):
    result = run("shopify", "shops")
    assert result.exit_code == 0 and "No shops connected" in result.output
    as_json = run("shopify", "shops", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output) == []


@pytest.fixture
def installs(app: App) -> dict[str, Any]:
    """Three installs in three modes and states; returns the token values that must never be shown."""
    tokens = app.shopify_tokens
    tokens.store("default", SHOP, "oauth", ShopifyTokenAnswer("shpua_oauthaccess", "read_orders,read_products", 3600,
                                                              "shprt_oauthrefresh", 7776000))
    tokens.store("second", SHOP, "client_credentials", ShopifyTokenAnswer("shpat_ccsecret", "read_orders", 86399))
    tokens.store_legacy("default", "other-shop.myshopify.com", "shpat_legacysecret", "read_orders")
    tokens.rejected("other-shop.myshopify.com", "default", "HTTP 401 from the Admin API")
    with app.db.session() as session:
        ciphertexts = [row[0] for row in session.execute(
            text("SELECT access_token_enc FROM shopify_installs"))]
    return {"values": ["shpua_oauthaccess", "shprt_oauthrefresh", "shpat_ccsecret", "shpat_legacysecret"],
            "ciphertexts": ciphertexts, "status": {(s.app, s.shop): s for s in tokens.all_status()}}


def test_shops_table_shows_each_embedded_merchants_own_setup(run, rsps, app, installs):
    app.merchant_settings.save("default", SHOP, {"recipients": ["me"], "digest": {"at": ["08:00"]},
                                                 "new_orders": None}, expected_version=0)
    result = run("shopify", "shops")
    rows = {tuple(line.split()[:2]): line for line in result.output.splitlines()[1:] if not line.startswith(" ")}
    assert rows[(SHOP, "default")].endswith("no kakao, 1 job(s), settings v1")
    assert rows[(SHOP, "second")].rstrip().endswith("-")


def test_shops_table_lists_installs_without_token_values(run, rsps, installs):
    result = run("shopify", "shops")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SHOP", "APP", "MODE", "STATUS", "SCOPES", "TOKEN", "EXPIRES", "MERCHANT"]
    oauth = installs["status"][("default", SHOP)]
    cc = installs["status"][("second", SHOP)]
    rows = {tuple(line.split()[:4]): line for line in lines[1:] if not line.startswith(" ")}
    assert set(rows) == {("other-shop.myshopify.com", "default", "legacy", "invalid"),
                         (SHOP, "default", "oauth", "active"), (SHOP, "second", "client_credentials", "active")}
    assert "read_orders,read_products" in rows[(SHOP, "default", "oauth", "active")]
    assert local(oauth.access_expires_at) in rows[(SHOP, "default", "oauth", "active")]
    assert local(cc.access_expires_at) in rows[(SHOP, "second", "client_credentials", "active")]
    assert "never" in rows[("other-shop.myshopify.com", "default", "legacy", "invalid")]
    (reason,) = [line for line in lines if line.startswith(" ")]  # only the install that needs a person
    assert "HTTP 401 from the Admin API" in reason and "shopify add-token other-shop.myshopify.com" in reason
    for secret in installs["values"] + installs["ciphertexts"]:
        assert secret not in result.output
    assert len(rsps.calls) == 0


def test_shops_json_for_scripts_without_token_values(run, rsps, installs):
    result = run("shopify", "shops", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    by_key = {(entry["app"], entry["shop"]): entry for entry in entries}
    assert set(by_key) == {("default", SHOP), ("second", SHOP), ("default", "other-shop.myshopify.com")}
    oauth = by_key[("default", SHOP)]
    assert oauth["mode"] == "oauth" and oauth["status"] == "active" and oauth["scopes"] == ["read_orders",
                                                                                          "read_products"]
    assert datetime.fromisoformat(oauth["access_expires_at"]) == installs["status"][("default", SHOP)].access_expires_at
    legacy = by_key[("default", "other-shop.myshopify.com")]
    assert legacy["status"] == "invalid" and "HTTP 401" in legacy["status_reason"]
    assert legacy["access_expires_at"] is None
    assert "shopify add-token" in legacy["action"] and oauth["action"] is None
    for secret in installs["values"] + installs["ciphertexts"]:
        assert secret not in result.output
