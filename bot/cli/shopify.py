"""The `shopify` command group: connect shops (install, connect, add-token), app-toml, list shops."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

import click

from bot.app import App
from bot.cli.common import CliState, Failed, UsageProblem, errors_to_exit_codes, pass_state
from bot.connect.shopify_install import shop_graphql
from bot.connect.webhook_needs import missing_scopes, missing_text, needed_scopes, needed_topics, sync_shop
from bot.delivery.health_rules import MerchantState, merchant_states
from bot.shopify.client import ShopifyTokenAnswer, required_scopes_missing
from bot.shopify.errors import ShopifyAuthError
from bot.shopify.graphql import ShopifyGraphQL
from bot.shopify.signing import normalize_shop
from bot.shopify.subscriptions import app_toml
from bot.util.report_logging import printed_reports
from bot.util.times import local_time
from tokens.shopify import reconnect_hint


@click.group()
@click.pass_context
def shopify(ctx: click.Context) -> None:
    """Shopify: connect shops (install, connect, add-token) and list them."""
    ctx.with_resource(printed_reports())  # each command prints its outcome: no log line repeating it


def _shop(shop: str) -> str:
    """The shop domain, lower-cased; anything but a bare *.myshopify.com host is a usage error (exit 2)."""

    try:
        return normalize_shop(shop.strip())
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _app_name(app: App, name: str | None) -> str:
    """--app NAME, else the only configured app, else the one named "default"."""
    names = [configured.name for configured in app.config.shopify.apps]
    if name is not None:
        return name
    if len(names) == 1:
        return names[0]
    if "default" in names:
        return "default"
    raise UsageProblem(f"several Shopify apps are configured: choose one with --app (apps: {', '.join(names)})")


_APP_OPTION = click.option("--app", "app_name", metavar="NAME",
                           help="the configured Shopify app ([[shopify.apps]] name; default: the only one, "
                                "else 'default')")


@shopify.command("install")
@click.argument("shop")
@_APP_OPTION
@pass_state
@errors_to_exit_codes
def shopify_install(state: CliState, shop: str, app_name: str | None) -> None:
    """Print the install (OAuth) URL of SHOP; `run` serves it."""

    shop = _shop(shop)
    app = state.app(migrate=False)
    name = _app_name(app, app_name)
    app.shopify_app(name)  # its credentials must be set, or `run` cannot complete the install
    public_url = app.config.server.public_url.rstrip("/")
    click.echo(f"{public_url}/shopify/{quote(name, safe='')}/install?shop={shop}")
    click.echo(f"Open this address in a browser (logged in to {shop}) while `python -m bot run` serves "
               f"{public_url}; after the merchant approves, the token is stored and `python -m bot shopify shops` "
               "lists the shop.")


@shopify.command("connect")
@click.argument("shop")
@_APP_OPTION
@pass_state
@errors_to_exit_codes
def shopify_connect(state: CliState, shop: str, app_name: str | None) -> None:
    """Connect SHOP with the client credentials grant (an app of the shop's own organisation)."""

    shop = _shop(shop)
    app = state.app()
    name = _app_name(app, app_name)
    shopify_app = app.shopify_app(name)
    answer = app.shopify_oauth(name).client_credentials(shop)
    status = app.shopify_tokens.store(name, shop, "client_credentials", answer)
    _warn_missing_scopes(name, required_scopes_missing(shopify_app, answer))
    expiry = local_time(status.access_expires_at, app.config.timezone) if status.access_expires_at else "never"
    click.echo(f"Connected {shop} with app {name!r} (client credentials).\n"
               f"  scopes  {', '.join(status.scopes) or '(none reported)'}\n"
               f"  token expires {expiry} (renewed automatically)")
    _subscribe_webhooks(app, name, shop)


@shopify.command("add-token")
@click.argument("shop")
@click.option("--token-env", "token_env", required=True, metavar="VAR",
              help="environment variable (or .env entry, or credential file) holding the Admin API token")
@_APP_OPTION
@pass_state
@errors_to_exit_codes
def shopify_add_token(state: CliState, shop: str, token_env: str, app_name: str | None) -> None:
    """Store a legacy custom app's Admin API token for SHOP, after checking that it works."""

    shop = _shop(shop)
    app = state.app()
    name = _app_name(app, app_name)
    shopify_app = app.shopify_app(name)
    token = app.secrets.require(token_env, f"set {token_env} to the shop's Admin API access token (shpat_…) in "
                                           "the environment, in .env beside the config, or as a systemd credential")
    graphql = ShopifyGraphQL(app.shopify_http, origin=app.config.shopify.origin, shop=shop,
                             api_version=app.config.shopify.api_version, tokens=_FixedToken(token))
    try:
        data = graphql.query("{ shop { name } currentAppInstallation { accessScopes { handle } } }")
    except ShopifyAuthError as exc:
        raise Failed(f"{shop}: token refused by Shopify (HTTP {exc.status}); nothing stored. Check the token in "
                     f"{token_env}: it must be the Admin API access token of a custom app installed on {shop}") from None
    shop_name = ((data or {}).get("shop") or {}).get("name") or shop
    installation = (data or {}).get("currentAppInstallation") or {}
    handles = [scope.get("handle") for scope in installation.get("accessScopes") or [] if isinstance(scope, dict)]
    scopes = ",".join(handle for handle in handles if isinstance(handle, str) and handle)
    status = app.shopify_tokens.store_legacy(name, shop, token, scopes)
    _warn_missing_scopes(name, required_scopes_missing(shopify_app, ShopifyTokenAnswer(token, scopes)))
    click.echo(f"Token works for {shop_name!r} ({shop}); stored encrypted as app {name!r} (legacy token).\n"
               f"  scopes  {', '.join(status.scopes) or '(none reported)'}")
    _subscribe_webhooks(app, name, shop)


def _subscribe_webhooks(app: App, name: str, shop: str) -> None:
    """Best effort after a shop was stored: the subscriptions follow the shop's jobs (missing ones made,
    ours nobody needs deleted); a failure is a warning, the connection stands (exit 0)."""

    synced = sync_shop(app, shop_graphql(app, shop, name), shop, name)
    if synced.error:
        click.echo(f"warning: {shop} is connected, but subscribing it to webhooks at {synced.uri} failed: "
                   f"{synced.error}. Order alerts then rely on reconciliation; run this command again to retry.",
                   err=True)
    else:
        made = ", ".join(synced.created) + " subscribed" if synced.created else "already subscribed"
        gone = f"; {', '.join(synced.deleted)} unsubscribed (no job needs them)" if synced.deleted else ""
        click.echo(f"  webhooks {made}{gone} → {synced.uri}")
    status = app.shopify_tokens.status(shop, name)
    missing = missing_scopes(app, shop, status.scopes if status else ())
    if missing:
        click.echo(f"warning: {shop} did not grant {missing_text(missing)}: those jobs will fail. Grant the scopes "
                   "in the app's configuration and connect again.", err=True)


class _FixedToken:
    """The token source of a token being checked: nothing is stored, so a refusal marks nothing."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew_refused(self) -> bool:
        return False  # a pasted token cannot be renewed

    def rejected(self, reason: str) -> None:
        pass

    def __repr__(self) -> str:
        return "_FixedToken(<hidden>)"


def _warn_missing_scopes(app_name: str, missing: Any) -> None:
    if missing:
        click.echo(f"warning: app {app_name!r} did not get the scopes {', '.join(missing)} it is configured to ask "
                   "for; jobs that need them will fail. Grant them in the app's configuration and connect again.",
                   err=True)


@shopify.command("app-toml")
@_APP_OPTION
@pass_state
@errors_to_exit_codes
def shopify_app_toml(state: CliState, app_name: str | None) -> None:
    """Print shopify.app.toml settings for this server: URLs, scopes, webhooks, compliance topics."""

    app = state.app(migrate=False)
    name = _app_name(app, app_name)
    configured = {entry.name: entry for entry in app.config.shopify.apps}
    if name not in configured:
        raise UsageProblem(f"no Shopify app named {name!r} (apps: {', '.join(configured)})")
    # Only the client id is printed: the secret is neither needed nor shown.
    client_id = app.secrets.require(configured[name].api_key_env, f"client id of Shopify app {name!r}")
    scopes = list(dict.fromkeys([*configured[name].scopes, *needed_scopes(app)]))  # what the jobs need too
    click.echo(app_toml(public_url=app.config.server.public_url, api_version=app.config.shopify.api_version,
                        app_name=name, scopes=scopes, client_id=client_id, topics=needed_topics(app)), nl=False)


@shopify.command("shops")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
@errors_to_exit_codes
def shopify_shops(state: CliState, as_json: bool) -> None:
    """Installed shops: app, connection mode, status, scopes, token expiry (never token values)."""

    app = state.app()
    installs = app.shopify_tokens.all_status()
    if as_json:
        def instant(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        click.echo(json.dumps([{"shop": s.shop, "app": s.app, "mode": s.mode, "status": s.status,
                                "status_reason": s.status_reason, "scopes": list(s.scopes),
                                "access_expires_at": instant(s.access_expires_at),
                                "refresh_expires_at": instant(s.refresh_expires_at),
                                "installed_at": instant(s.installed_at), "refreshed_at": instant(s.refreshed_at),
                                "action": None if s.active else reconnect_hint(s.mode, s.shop, s.app)}
                               for s in installs], indent=2, ensure_ascii=False))
        return
    if not installs:
        click.echo("No shops connected: `python -m bot shopify install SHOP` (OAuth), `shopify connect SHOP` "
                   "(client credentials) or `shopify add-token SHOP --token-env VAR` (legacy token).")
        return
    merchants = {(m.app, m.shop): m for m in merchant_states(app)}
    header = ("SHOP", "APP", "MODE", "STATUS", "SCOPES", "TOKEN EXPIRES", "MERCHANT")
    rows = [(s.shop, s.app, s.mode, s.status, ",".join(s.scopes) or "-",
             local_time(s.access_expires_at, app.config.timezone) if s.access_expires_at else
             ("-" if s.status == "uninstalled" else "never"), _merchant_cell(merchants.get((s.app, s.shop))))
            for s in installs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    click.echo("  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip())
    for status, row in zip(installs, rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if not status.active:
            click.echo(f"    {status.status}: {status.status_reason or 'no reason recorded'} — "
                       f"{reconnect_hint(status.mode, status.shop, status.app)}")
        elif missing_scopes(app, status.shop, status.scopes):
            click.echo(f"    missing scopes: {missing_text(missing_scopes(app, status.shop, status.scopes))} — "
                       "grant them in the app's configuration and connect again")


def _merchant_cell(merchant: MerchantState | None) -> str:
    """An embedded app merchant's own setup: their KakaoTalk and settings ("-": not one)."""
    if merchant is None:
        return "-"
    kakao = {"connected": "kakao ok", "needs_login": "kakao expired", "not_connected": "no kakao"}[merchant.kakao]
    return f"{kakao}, {merchant.jobs} job(s), settings v{merchant.settings_version}"
