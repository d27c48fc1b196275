"""Webhook subscriptions (`bot.shopify.subscriptions`) against the Shopify stand-in; the CLI
commands that subscribe (`shopify connect`, `shopify add-token`); and `shopify app-toml`."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import responses
import tomllib
from click.testing import CliRunner, Result

from bot.app import App, load_config
from bot.cli.main import cli
from bot.config.secrets import Secrets
from bot.connect.shopify_install import shop_graphql
from bot.sandbox.server import RunningServer, serve
from bot.sandbox.shopify import ShopifySandbox
from bot.shopify.errors import ShopifyError
from bot.shopify.subscriptions import TOPICS, subscribe, webhook_uri
from bot.util.retry import RetryPolicy

PUBLIC = "https://bot.example.com"
SHOP = "sub-shop.myshopify.com"
KEY, SECRET = "sub-client-id", "sub-client-secret"
SECOND_KEY, SECOND_SECRET = "sub-second-id", "sub-second-secret"
URI = f"{PUBLIC}/shopify/default/webhooks"


def config_text(origin: str, api_version: str = "2025-10") -> str:
    return textwrap.dedent(f"""\
        [database]
        url = "sqlite:///subs.sqlite3"

        [server]
        public_url = "{PUBLIC}/"

        [shopify]
        api_version = "{api_version}"
        origin = "{origin}"

        [[shopify.apps]]
        name = "default"
        scopes = ["read_orders", "read_products"]

        [[shopify.apps]]
        name = "second"
        api_key_env = "SECOND_API_KEY"
        api_secret_env = "SECOND_API_SECRET"
        scopes = ["read_orders"]

        [[jobs]]
        name = "new-orders"
        kind = "shopify-order-alert"
        shop = "{SHOP}"
        to = ["me"]
        """)


@pytest.fixture
def standin() -> ShopifySandbox:
    shopify = ShopifySandbox()
    shopify.register_app(KEY, SECRET, own_shops=[SHOP])
    shopify.add_shop(SHOP)
    return shopify


@pytest.fixture
def standin_server(standin: ShopifySandbox) -> Iterator[RunningServer]:
    with serve(standin.wsgi_app()) as server:
        yield server


@pytest.fixture
def env(secret_key: str) -> dict[str, str | None]:
    return {"BOT_SECRET_KEY": secret_key, "SHOPIFY_API_KEY": KEY, "SHOPIFY_API_SECRET": SECRET,
            "SECOND_API_KEY": SECOND_KEY, "SECOND_API_SECRET": SECOND_SECRET,
            "BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None}


@pytest.fixture
def make_app(write_config: Callable[..., Path], env: dict[str, str | None],
             standin_server: RunningServer) -> Iterator[Callable[..., App]]:
    """make_app(api_version) → an App with SHOP connected to the stand-in by client credentials."""
    made: list[App] = []

    def make(api_version: str = "2025-10") -> App:
        path = write_config(config_text(f"{standin_server.url}/{{shop}}", api_version))
        app = App(load_config(path), Secrets({k: v for k, v in env.items() if v is not None}),
                  retry=RetryPolicy(attempts=2, base_delay=0, sleep=lambda _s: None))
        app.db.migrate()
        made.append(app)
        app.shopify_tokens.store("default", SHOP, "client_credentials",
                                 app.shopify_oauth("default").client_credentials(SHOP))
        return app

    yield make
    for app in made:
        app.close()


def mutations(standin: ShopifySandbox) -> list[dict[str, Any]]:
    return [r for r in standin.graphql_requests if "webhookSubscriptionCreate" in r["query"]]


# -- subscribe ----------------------------------------------------------------------------------


def test_webhook_uri_is_the_apps_webhook_route_under_public_url(make_app):
    app = make_app()
    assert webhook_uri(app.config.server.public_url, "default") == URI
    assert webhook_uri(app.config.server.public_url, "second") == f"{PUBLIC}/shopify/second/webhooks"


def test_subscribe_creates_the_three_topics_once(make_app, standin):
    gql = shop_graphql(make_app(), SHOP, "default")
    assert subscribe(gql, URI) == list(TOPICS)
    assert sorted((s["topic"], s["uri"]) for s in standin.subscriptions[SHOP]) == sorted((t, URI) for t in TOPICS)
    assert subscribe(gql, URI) == []
    assert len(standin.subscriptions[SHOP]) == 3 and len(mutations(standin)) == 3
    assert all(r["variables"]["uri"] == URI for r in mutations(standin))


def test_subscribe_creates_only_the_missing_topics(make_app, standin):
    gql = shop_graphql(make_app(), SHOP, "default")
    assert subscribe(gql, URI, topics=("APP_UNINSTALLED",)) == ["APP_UNINSTALLED"]
    assert subscribe(gql, URI) == ["ORDERS_CREATE", "ORDERS_UPDATED"]
    assert sorted(s["topic"] for s in standin.subscriptions[SHOP]) == sorted(TOPICS)


def test_a_subscription_to_another_address_does_not_count(make_app, standin):
    gql = shop_graphql(make_app(), SHOP, "default")
    subscribe(gql, "https://old.example.com/shopify/default/webhooks")
    assert subscribe(gql, URI) == list(TOPICS)
    assert len(standin.subscriptions[SHOP]) == 6


def test_existing_subscriptions_are_found_beyond_the_first_page(make_app, standin):
    gql = shop_graphql(make_app(), SHOP, "default")
    for n in range(50):
        subscribe(gql, f"https://elsewhere.example.com/{n}", topics=("ORDERS_CREATE",))
    assert subscribe(gql, URI) == list(TOPICS)  # ours is the 51st ORDERS_CREATE: on page two
    before = len(mutations(standin))
    assert subscribe(gql, URI) == []
    assert len(mutations(standin)) == before
    listed = [r for r in standin.graphql_requests[-3:] if "webhookSubscriptions(" in r["query"]]
    assert [r["variables"]["first"] for r in listed] == [50, 50]
    assert listed[1]["variables"]["after"]


def test_an_app_only_sees_its_own_subscriptions(make_app, standin):
    app = make_app()
    standin.register_app(SECOND_KEY, SECOND_SECRET, own_shops=[SHOP])
    app.shopify_tokens.store("second", SHOP, "client_credentials", app.shopify_oauth("second").client_credentials(SHOP))
    assert subscribe(shop_graphql(app, SHOP, "default"), URI) == list(TOPICS)
    # Same address, but another app's subscriptions: the second app needs its own.
    assert subscribe(shop_graphql(app, SHOP, "second"), URI) == list(TOPICS)
    assert len(standin.subscriptions[SHOP]) == 6


def test_before_2025_10_the_legacy_address_fields_are_used(make_app, standin):
    gql = shop_graphql(make_app("2025-07"), SHOP, "default")
    assert subscribe(gql, URI) == list(TOPICS)
    assert subscribe(gql, URI) == []
    queries = [r["query"] for r in standin.graphql_requests if "ebhookSubscription" in r["query"]]
    assert all("callbackUrl" in q and " uri" not in q for q in queries)
    assert {s["uri"] for s in standin.subscriptions[SHOP]} == {URI}


def test_user_errors_are_logged_and_raised(make_app, standin, caplog):
    gql = shop_graphql(make_app(), SHOP, "default")
    with caplog.at_level(logging.ERROR, logger="bot.shopify.subscriptions"), \
            pytest.raises(ShopifyError, match="not a valid webhook topic"):
        subscribe(gql, URI, topics=("orders/create",))
    assert "not a valid webhook topic" in caplog.text
    assert standin.subscriptions[SHOP] == []


class FakeGraphQL:
    """Answers the list query with `existing` nodes and each create with `create_answer`."""

    def __init__(self, existing: list[dict], create_answer: Any, api_version: str = "2025-10"):
        self.shop, self.api_version = SHOP, api_version
        self.existing, self.create_answer = existing, create_answer
        self.created: list[dict] = []

    def nodes(self, document: str, variables: dict, path: list[str], **_kw: Any) -> Iterator[dict]:
        assert path == ["webhookSubscriptions"] and variables["topics"]
        return iter(self.existing)

    def query(self, document: str, variables: dict | None = None) -> dict:
        self.created.append(variables or {})
        return self.create_answer


def test_an_already_taken_subscription_counts_as_present():
    taken = {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
        {"field": ["webhookSubscription", "callbackUrl"], "message": "Address for this topic has already been taken"}]}}
    gql = FakeGraphQL([], taken)
    assert subscribe(gql, URI) == []  # created meanwhile by someone else: what we wanted
    assert len(gql.created) == 3


def test_legacy_endpoint_shaped_answers_are_read():
    existing = [{"topic": topic, "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": URI}}
                for topic in TOPICS]
    gql = FakeGraphQL(existing, None)
    assert subscribe(gql, URI) == [] and gql.created == []


def test_a_create_answer_without_a_result_is_an_error():
    with pytest.raises(ShopifyError, match="without a result"):
        subscribe(FakeGraphQL([], {}), URI)


# -- the CLI commands that subscribe --------------------------------------------------------------


class Cli:
    def __init__(self, env: dict[str, str | None], config: Path):
        self.env, self.config = env, config

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            return CliRunner().invoke(cli, ["--config", str(self.config), *args], env={**self.env, **(env or {})},
                                      catch_exceptions=False)
        finally:  # the CLI installs its own stderr handler: put pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)


@pytest.fixture
def run_standin(write_config: Callable[..., Path], env: dict[str, str | None], standin_server: RunningServer) -> Cli:
    return Cli(env, write_config(config_text(f"{standin_server.url}/{{shop}}")))


def test_connect_subscribes_the_shop_once(run_standin, standin):
    result = run_standin("shopify", "connect", SHOP)
    assert result.exit_code == 0, result.output
    assert "ORDERS_CREATE, ORDERS_UPDATED, APP_UNINSTALLED subscribed" in result.output and URI in result.output
    assert sorted((s["topic"], s["uri"]) for s in standin.subscriptions[SHOP]) == sorted((t, URI) for t in TOPICS)
    again = run_standin("shopify", "connect", SHOP)
    assert again.exit_code == 0 and "already subscribed" in again.output
    assert len(standin.subscriptions[SHOP]) == 3


def test_connect_with_a_failing_subscription_warns_and_exits_0(run_standin, standin):
    standin.fail_next("/graphql.json", 400, {"errors": "Bad Request"})
    result = run_standin("shopify", "connect", SHOP)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "webhooks" in result.output
    assert "Connected" in result.output and standin.subscriptions[SHOP] == []
    assert SECRET not in result.output


GRAPHQL_URL = f"https://{SHOP}/admin/api/2025-10/graphql.json"
PASTED = "shpat_pastedsubscriptiontoken01"
COST = {"cost": {"requestedQueryCost": 2, "actualQueryCost": 2,
                 "throttleStatus": {"maximumAvailable": 2000, "currentlyAvailable": 1998, "restoreRate": 100}}}


@pytest.fixture
def run_mocked(write_config: Callable[..., Path], env: dict[str, str | None]) -> Cli:
    return Cli({**env, "SHOP_TOKEN": PASTED}, write_config(config_text("https://{shop}")))


def fake_admin_api(created: list[dict], fail_creates: bool = False) -> Callable:
    """A responses callback: the add-token check query, the subscription list, the creates."""
    def answer(request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        query = body["query"]
        if "currentAppInstallation" in query:
            scopes = [{"handle": "read_orders"}, {"handle": "read_products"}]
            data = {"shop": {"name": "Sub Shop"}, "currentAppInstallation": {"accessScopes": scopes}}
        elif "webhookSubscriptionCreate" in query:
            if fail_creates:
                data = {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
                    {"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}]}}
            else:
                created.append({"token": request.headers["X-Shopify-Access-Token"], **body["variables"]})
                data = {"webhookSubscriptionCreate": {"webhookSubscription": {
                    "id": f"gid://shopify/WebhookSubscription/{len(created)}", "topic": body["variables"]["topic"],
                    "uri": body["variables"]["uri"]}, "userErrors": []}}
        else:
            data = {"webhookSubscriptions": {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}}
        return 200, {}, json.dumps({"data": data, "extensions": COST})
    return answer


def test_add_token_subscribes_with_the_pasted_token(run_mocked):
    created: list[dict] = []
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL_URL, callback=fake_admin_api(created))
        result = run_mocked("shopify", "add-token", SHOP, "--token-env", "SHOP_TOKEN")
    assert result.exit_code == 0, result.output
    assert [(c["topic"], c["uri"], c["token"]) for c in created] == [(t, URI, PASTED) for t in TOPICS]
    assert "subscribed" in result.output and PASTED not in result.output


def test_add_token_with_refused_subscriptions_warns_and_keeps_the_token(run_mocked, env, write_config):
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, GRAPHQL_URL, callback=fake_admin_api([], fail_creates=True))
        result = run_mocked("shopify", "add-token", SHOP, "--token-env", "SHOP_TOKEN")
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "Address is invalid" in result.output
    app = App(load_config(run_mocked.config), Secrets({k: v for k, v in env.items() if v is not None}))
    try:
        assert app.shopify_tokens.status(SHOP, "default").mode == "legacy"
    finally:
        app.close()


# -- app-toml -----------------------------------------------------------------------------------


@pytest.fixture
def run_offline(write_config: Callable[..., Path], env: dict[str, str | None]) -> Cli:
    return Cli(env, write_config(config_text("https://{shop}")))


def test_app_toml_prints_a_valid_configuration_for_the_app(run_offline):
    result = run_offline("shopify", "app-toml")
    assert result.exit_code == 0, result.output
    toml = tomllib.loads(result.output)
    assert toml["client_id"] == KEY
    assert toml["application_url"] == f"{PUBLIC}/shopify/default"
    assert toml["embedded"] is True
    assert "name" not in toml  # a deploy would rename the app
    assert toml["access_scopes"] == {"scopes": "read_orders,read_products"}
    assert toml["auth"] == {"redirect_urls": [f"{PUBLIC}/shopify/default/callback"]}
    assert toml["webhooks"]["api_version"] == "2025-10"
    events, compliance = toml["webhooks"]["subscriptions"]
    assert events == {"topics": ["orders/create", "orders/updated", "app/uninstalled"], "uri": URI}
    assert compliance == {"compliance_topics": ["customers/data_request", "customers/redact", "shop/redact"],
                          "uri": URI}
    assert SECRET not in result.output


def test_app_toml_for_another_app_needs_no_secret(run_offline):
    result = run_offline("shopify", "app-toml", "--app", "second", env={"SECOND_API_SECRET": None})
    assert result.exit_code == 0, result.output
    toml = tomllib.loads(result.output)
    assert toml["client_id"] == SECOND_KEY and toml["access_scopes"]["scopes"] == "read_orders"
    assert {sub["uri"] for sub in toml["webhooks"]["subscriptions"]} == {f"{PUBLIC}/shopify/second/webhooks"}
    assert toml["auth"]["redirect_urls"] == [f"{PUBLIC}/shopify/second/callback"]


def test_app_toml_with_an_unknown_app_or_no_client_id_exits_2(run_offline):
    unknown = run_offline("shopify", "app-toml", "--app", "nope")
    assert unknown.exit_code == 2 and "'nope'" in unknown.output and "default, second" in unknown.output
    no_key = run_offline("shopify", "app-toml", env={"SHOPIFY_API_KEY": None})
    assert no_key.exit_code == 2 and "SHOPIFY_API_KEY" in no_key.output


REFUND_JOB = f"""
[[jobs]]
name = "refunds"
kind = "shopify-refund-alert"
shop = "{SHOP}"
to = ["me"]
"""


def test_app_toml_prints_the_topics_and_scopes_the_jobs_need(write_config, env):
    text = config_text("https://{shop}").replace('scopes = ["read_orders", "read_products"]', 'scopes = ["read_products"]')
    result = Cli(env, write_config(text + REFUND_JOB))("shopify", "app-toml")
    assert result.exit_code == 0, result.output
    toml = tomllib.loads(result.output.split("\n", 1)[1] if result.output.startswith("warning") else result.output)
    events, _ = toml["webhooks"]["subscriptions"]
    assert events["topics"] == ["orders/create", "orders/updated", "orders/cancelled", "refunds/create",
                                "app/uninstalled"]
    assert toml["access_scopes"] == {"scopes": "read_products,read_orders"}  # the jobs' scope added


def test_connect_subscribes_new_kinds_and_names_scopes_the_shop_did_not_grant(write_config, env, standin,
                                                                              standin_server):
    standin.register_app(KEY, SECRET, own_shops=[SHOP], scopes_granted="read_products")
    run = Cli(env, write_config(config_text(f"{standin_server.url}/{{shop}}") + REFUND_JOB))
    result = run("shopify", "connect", SHOP)
    assert result.exit_code == 0, result.output
    assert "ORDERS_CANCELLED" in result.output and "REFUNDS_CREATE" in result.output
    assert "did not grant read_orders (for new-orders, refunds)" in result.output
    shops = run("shopify", "shops")
    assert "missing scopes: read_orders (for new-orders, refunds)" in shops.output
