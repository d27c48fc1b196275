"""A local stand-in of Shopify for many shops and apps: OAuth, the token endpoint, the GraphQL
Admin API and webhook deliveries, on one Flask app.

Point the bot at it with `[shopify].origin = "http://127.0.0.1:PORT/{shop}"`: every route
starts with the shop domain (`/<shop>/admin/...`). It mirrors UPSTREAMS.md (Shopify part):
signed OAuth callbacks, expiring offline tokens whose refresh tokens are one-time use (with
Shopify's 2026-08 grace: a used refresh token works until its replacement is used), client
credentials on the app's own stores only, query cost with a leaky bucket per shop and app,
API versions that fall forward, protected customer data. This module routes requests,
keeps shops, buckets and records, and holds the lock; queries are answered by
`bot.sandbox.shopify_graphql`, codes and tokens by `bot.sandbox.shopify_oauth`, and order
data is made and shaped by `bot.sandbox.shopify_orders`. Tests inject clocks, add shops and
orders, inspect what was received and script failures (`fail_next`, `hang_next`).

This is a test double: it keeps every token and request in memory on purpose.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

import requests
from flask import Flask, Response, redirect, request
from werkzeug.exceptions import HTTPException

from bot.sandbox.faults import FaultPlan
from bot.sandbox.recording import RequestLog
from bot.sandbox.shopify_graphql import MAX_COST, UNSUPPORTED, Context, QueryError, order_number, parse
from bot.sandbox.shopify_inventory import Inventory, risk_summary
from bot.sandbox.shopify_oauth import DEFAULT_SCOPE, Grant, OAuthError, TokenAuthority
from bot.sandbox.shopify_orders import apply_fields, aware, new_order, public, rest_order, set_statuses
from bot.sandbox.shopify_refunds import add_refund
from bot.sandbox.standin_app import Route, standin_app
from bot.shopify.signing import is_valid_shop, webhook_hmac

JSON_TYPE = "application/json; charset=utf-8"
SUPPORTED_VERSIONS = ("2025-07", "2025-10", "2026-01", "2026-04", "2026-07", "2026-10")
DEPRECATION_DOC = "https://shopify.dev/api/usage/versioning#deprecation-practices"
THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"

INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
INTERNAL_ERROR = {"errors": "Internal Server Error"}  # a ready-made body for fail_next(…, 500, …)


class _Reply(Exception):
    """Raised anywhere in a handler to answer at once with this status, JSON body and headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status, body)
        self.status, self.body, self.headers = status, body, headers or {}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type=JSON_TYPE,
                    headers=headers or {})


@dataclass
class _Shop:
    domain: str
    info: dict[str, Any]  # the GraphQL Shop object
    timezone: ZoneInfo
    orders: list[dict[str, Any]] = field(default_factory=list)
    next_number: int = 1001
    inventory: Inventory = field(default_factory=Inventory)


@dataclass
class _Bucket:
    available: float
    at: float


class ShopifySandbox:
    """Shops, apps, tokens and orders of a pretend Shopify, plus the Flask app serving them."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        bucket_size: int = 2000,
        restore_rate: float = 100.0,
        throttle_status: int = 200,
        supported_versions: Iterable[str] = SUPPORTED_VERSIONS,
        access_ttl: int = 3600,
        refresh_ttl: int = 7776000,
        client_credentials_ttl: int = 86399,
    ):
        self.clock, self.wall_clock, self.latency = clock, wall_clock, latency
        self.bucket_size, self.restore_rate, self.throttle_status = bucket_size, restore_rate, throttle_status
        self.supported_versions = tuple(supported_versions)
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl
        self.client_credentials_ttl = client_credentials_ttl

        # Knobs tests may change at any time.
        self.deprecated_versions: set[str] = set()
        self.orders_window_days: int | None = None  # e.g. 60: read_orders sees only recent orders

        # Introspection for tests.
        self.token_requests: list[dict[str, Any]] = []
        self.graphql_requests: list[dict[str, Any]] = []
        self.subscriptions: dict[str, list[dict[str, Any]]] = {}
        self.webhooks_sent: list[dict[str, Any]] = []
        self.warnings: list[str] = []

        self._oauth = TokenAuthority(self)  # reads clock, wall_clock and the *_ttl knobs above at each use
        self._shops: dict[str, _Shop] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._subscription_owner: dict[str, str] = {}
        self._ids = 6_100_000_000_000  # Shopify ids are large: never assume small ints
        self._requests = RequestLog()
        self._faults = FaultPlan(matches=str.endswith)  # scripted by path suffix: any shop, any version
        self._lock = threading.RLock()
        self.app = self._build_app()

    # ---- test helpers: setup -----------------------------------------------------------

    def wsgi_app(self) -> Flask:
        return self.app

    def register_app(self, api_key: str, api_secret: str, *, scopes_granted: str | None = None,
                     own_shops: Iterable[str] = ()) -> None:
        """An app; `scopes_granted` None grants what was asked; `own_shops` allow client credentials."""
        with self._lock:
            self._oauth.register_app(api_key, api_secret, scopes_granted, set(own_shops))

    def add_shop(self, shop: str, *, currency: str = "KRW", timezone: str = "Asia/Seoul",
                 name: str | None = None) -> None:
        if not is_valid_shop(shop):
            raise ValueError(f"{shop!r} is not a *.myshopify.com domain")
        with self._lock:
            info = {"id": f"gid://shopify/Shop/{self._next_id()}", "name": name or shop.split(".")[0],
                    "email": f"owner@{shop}", "currencyCode": currency, "myshopifyDomain": shop,
                    "ianaTimezone": timezone}
            self._shops[shop] = _Shop(shop, info, ZoneInfo(timezone))
            self.subscriptions.setdefault(shop, [])

    def add_orders(self, shop: str, count: int, *, start: datetime, every: timedelta, line_items: int = 2,
                   currency: str | None = None, cancelled_every: int = 0, refunded_every: int = 0,
                   fulfilled_every: int = 0, pending_every: int = 0,
                   protected_customer: bool = True) -> list[dict[str, Any]]:
        """`count` orders from `start`, `every` apart; every n-th one cancelled/refunded/... (0: none)."""
        with self._lock:
            s = self._shop(shop)
            made = []
            for i in range(1, count + 1):
                created = aware(start, s.timezone) + (i - 1) * every
                order = self._new_order(s, created, line_items, currency)
                set_statuses(order, i, created, cancelled_every=cancelled_every, refunded_every=refunded_every,
                             fulfilled_every=fulfilled_every, pending_every=pending_every)
                order["_protected"] = protected_customer
                s.orders.append(order)
                made.append(public(order))
            return made

    def add_order(self, shop: str, **fields: Any) -> dict[str, Any]:
        """One order; `fields` are GraphQL names (datetimes allowed), plus the shorthands `total`
        (shop money), `currency`, `protected_customer` and `lineItems=[{name, sku, quantity, price}]`."""
        with self._lock:
            s = self._shop(shop)
            created = fields.pop("createdAt", None) or datetime.fromtimestamp(self.wall_clock(), timezone.utc)
            currency = fields.pop("currency", None)
            order = self._new_order(s, aware(created, s.timezone), 2, currency)
            fields.setdefault("protected_customer", True)
            apply_fields(order, fields, s.timezone, self._next_id)
            s.orders.append(order)
            return public(order)

    def update_order(self, shop: str, order_id: str | int, **fields: Any) -> dict[str, Any]:
        """Change an order (by gid, numeric id or name); `updatedAt` moves to now unless given."""
        with self._lock:
            s, order = self._find(shop, order_id)
            fields.setdefault("updatedAt", datetime.fromtimestamp(self.wall_clock(), timezone.utc))
            apply_fields(order, fields, s.timezone, self._next_id)
            return public(order)

    def rest_order(self, shop: str, order_id: str | int) -> dict[str, Any]:
        """The order as a REST-shaped webhook body (`orders/create`): snake_case, money strings."""
        with self._lock:
            s, o = self._find(shop, order_id)
            return rest_order(o, s.timezone)

    def inventory(self, shop: str) -> Inventory:
        """The shop's inventory (bot.sandbox.shopify_inventory): add items, change levels (→ webhook bodies)."""
        with self._lock:
            return self._shop(shop).inventory

    def set_risk(self, shop: str, order_id: str | int, recommendation: str, levels: list[str],
                 facts: Iterable[tuple[str, str]] = ()) -> None:
        """The order's risk summary as `order.risk` answers it (an order without one: NONE, no assessments)."""
        with self._lock:
            _, order = self._find(shop, order_id)
            order["_risk"] = risk_summary(recommendation, levels, list(facts))

    # ---- test helpers: tokens ----------------------------------------------------------

    def issue_code(self, shop: str, api_key: str, *, scope: str = DEFAULT_SCOPE) -> str:
        """An authorization code as if the merchant had just installed the app (consented)."""
        with self._lock:
            return self._oauth.issue_code(self._shop(shop).domain, api_key, scope)

    def session_token(self, shop: str, api_key: str, *, user_id: str = "1", lifetime: int = 60) -> str:
        """The App Bridge session token the admin gives the app's page in `shop` (token exchange's subject)."""
        with self._lock:
            return self._oauth.session_token(self._shop(shop).domain, api_key, user_id=user_id, lifetime=lifetime)

    def legacy_token(self, shop: str, *, scope: str = DEFAULT_SCOPE) -> str:
        """A legacy admin-created custom app token (`shpat_…`): never expires."""
        with self._lock:
            self._shop(shop)
            return self._oauth.legacy_token(shop, scope)

    def uninstall(self, shop: str, api_key: str, *, webhook_url: str | None = None) -> requests.Response | None:
        """The merchant removes the app: its tokens, codes and webhook subscriptions there die.

        With `webhook_url`, Shopify's `app/uninstalled` webhook is delivered there afterwards."""
        with self._lock:
            s = self._shop(shop)
            self._oauth.uninstall(shop, api_key)
            self.subscriptions[shop] = [sub for sub in self.subscriptions[shop]
                                        if self._subscription_owner.get(sub["id"]) != api_key]
            payload = {"id": int(s.info["id"].rsplit("/", 1)[1]), "name": s.info["name"], "domain": shop,
                       "myshopify_domain": shop, "currency": s.info["currencyCode"],
                       "iana_timezone": s.info["ianaTimezone"]}
            secret = self._oauth.apps[api_key].api_secret
        if webhook_url is None:
            return None
        return self.send_webhook(webhook_url, topic="app/uninstalled", shop=shop, payload=payload, secret=secret)

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._oauth.expire_access_tokens()

    def available(self, shop: str, api_key: str) -> float:
        """Points left in the (shop, app) bucket now."""
        with self._lock:
            return self._bucket(shop, api_key).available

    # ---- test helpers: introspection and scripting -------------------------------------

    @property
    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, oldest first."""
        return self._requests.calls

    def count(self, path_suffix: str) -> int:
        return self._requests.count(path_suffix)

    def fail_next(self, path_suffix: str, status: int, body: Any, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """The next `times` requests to a path ending with `path_suffix` answer status/body instead."""
        self._faults.fail_next(path_suffix, status, body, times, headers)

    def hang_next(self, path_suffix: str, seconds: float) -> None:
        """The next request to a path ending with `path_suffix` sleeps first (client timeouts)."""
        self._faults.hang_next(path_suffix, seconds)

    def clear_faults(self) -> None:
        """Forget scripted failures and delays not yet played."""
        self._faults.clear()

    def send_webhook(self, url: str, *, topic: str, shop: str, payload: dict[str, Any], secret: str,
                     webhook_id: str | None = None, event_id: str | None = None,
                     triggered_at: datetime | str | None = None, api_version: str = "2025-10",
                     hmac_override: str | None = None, timeout: float = 5.0) -> requests.Response:
        """POST `payload` to `url` as Shopify delivers a webhook: raw JSON body, signed headers."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if triggered_at is None:
            triggered_at = datetime.fromtimestamp(self.wall_clock(), timezone.utc)
        if isinstance(triggered_at, datetime):
            triggered_at = triggered_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
            triggered_at = triggered_at.replace("+00:00", "Z")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": hmac_override if hmac_override is not None else webhook_hmac(body, secret),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-API-Version": api_version,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Triggered-At": triggered_at,
        }
        with self._lock:
            self.webhooks_sent.append({"url": url, "headers": headers, "body": body})
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    # ---- plumbing ----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        routes: list[Route] = [
            ("/<shop>/admin/oauth/authorize", "GET", self._authorize),
            ("/<shop>/admin/oauth/access_token", "POST", self._access_token),
            ("/<shop>/admin/api/<version>/graphql.json", "POST", self._graphql),
        ]
        app = standin_app(__name__, routes, self._requests, self._faults, latency=lambda: self.latency,
                          answer=lambda fault: _json(fault.status, fault.body, fault.headers))
        app.register_error_handler(_Reply, lambda e: _json(e.status, e.body, e.headers))
        app.register_error_handler(OAuthError, lambda e: _json(400, e.body))
        app.register_error_handler(HTTPException, lambda e: _json(e.code or 500, {"errors": e.name}))
        return app

    def _shop(self, shop: str) -> _Shop:
        found = self._shops.get(shop)
        if found is None:
            raise KeyError(f"unknown shop {shop!r}: add_shop() it first")
        return found

    def _shop_or_404(self, shop: str) -> _Shop:
        if shop not in self._shops:
            raise _Reply(404, {"errors": "Not Found"})
        return self._shops[shop]

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # ---- orders ------------------------------------------------------------------------

    def _new_order(self, s: _Shop, created: datetime, line_items: int, currency: str | None) -> dict[str, Any]:
        number = s.next_number
        s.next_number += 1
        return new_order(number, created, line_items, currency or s.info["currencyCode"], self._next_id)

    def _find(self, shop: str, order_id: str | int) -> tuple[_Shop, dict[str, Any]]:
        s = self._shop(shop)
        for order in s.orders:
            if str(order_id) in (order["id"], str(order_number(order)), order["name"]):
                return s, order
        raise KeyError(f"no order {order_id!r} in {shop}")

    # ---- OAuth endpoints: TokenAuthority decides, under the sandbox lock ------------------

    def _authorize(self, shop: str) -> Response:
        with self._lock:
            self._shop_or_404(shop)
            location = self._oauth.authorize(shop, request.args)
        return redirect(location, 302)

    def _access_token(self, shop: str) -> Response:
        form: dict[str, Any] = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        form = form if isinstance(form, dict) else {}
        with self._lock:
            self.token_requests.append(dict(form))
            self._shop_or_404(shop)
            return _json(200, self._oauth.access_token(shop, form))

    # ---- GraphQL Admin API -------------------------------------------------------------

    def _served_version(self, version: str) -> str:
        """Unsupported versions silently fall forward to the oldest newer one (or the newest)."""
        if version == "unstable" or version in self.supported_versions:
            return version
        if not re.fullmatch(r"\d{4}-\d{2}", version):
            raise _Reply(404, {"errors": "Not Found"})
        newer = sorted(v for v in self.supported_versions if v > version)
        return newer[0] if newer else max(self.supported_versions)

    def _graphql(self, shop: str, version: str) -> Response:
        served = self._served_version(version)
        headers = {"X-Shopify-API-Version": served}
        if served in self.deprecated_versions:
            headers["X-Shopify-API-Deprecated-Reason"] = DEPRECATION_DOC
        payload = request.get_json(silent=True)
        with self._lock:
            s = self._shop_or_404(shop)
            grant = self._oauth.authenticate(request.headers.get("X-Shopify-Access-Token", ""), shop)
            if grant is None:
                raise _Reply(401, INVALID_TOKEN, headers)
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                raise _Reply(400, {"errors": {"query": "Required parameter missing or invalid"}}, headers)
            variables = payload.get("variables") or {}
            record = {"shop": shop, "app": grant.app, "version": version, "served_version": served,
                      "query": payload["query"], "variables": variables, "requested_cost": None,
                      "actual_cost": None, "throttled": False}
            self.graphql_requests.append(record)
            status, body, extra = self._answer(s, grant, payload["query"], variables, record)
        return _json(status, body, {**headers, **extra})

    def _answer(self, s: _Shop, grant: Grant, query: str, variables: Any,
                record: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            operation = parse(query, variables if isinstance(variables, dict) else {})
            unsupported = operation.unsupported()
            if unsupported:
                return 200, {"errors": [{"message": UNSUPPORTED, "path": [key]} for key in unsupported]}, {}
            requested = operation.requested_cost()
        except QueryError as e:
            return 200, {"errors": [e.entry]}, {}
        record["requested_cost"] = requested
        if requested > MAX_COST:
            return 200, {"errors": [{"message": _max_cost_message(requested), "extensions": {
                "code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_COST}}]}, {}
        bucket = self._bucket(s.domain, grant.app)
        if requested > bucket.available:
            record["throttled"] = True
            body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                                        "documentation": THROTTLE_DOC}}],
                    "extensions": {"cost": self._cost(requested, None, bucket)}}
            extra = {}
            if self.throttle_status == 429:
                wait = math.ceil((requested - bucket.available) / self.restore_rate)
                extra["Retry-After"] = f"{max(wait, 1):.1f}"
            return self.throttle_status, body, extra
        bucket.available -= requested
        ctx = Context(shop=s.info, orders=s.orders, timezone=s.timezone, scopes=frozenset(grant.scopes),
                      subscriptions=[sub for sub in self.subscriptions[s.domain]
                                     if self._subscription_owner.get(sub["id"]) == grant.app],
                      subscribe=lambda topic, uri: self._subscribe(s.domain, grant.app, topic, uri),
                      unsubscribe=lambda sub_id: self._unsubscribe(s.domain, grant.app, sub_id),
                      visible_since=self._visible_since(), extra={"inventory": s.inventory})
        try:
            data, errors, search = operation.execute(ctx)
        except QueryError as e:
            bucket.available += requested  # refused before any work: nothing charged
            return 200, {"errors": [e.entry]}, {}
        actual = operation.actual_cost(data)
        bucket.available = min(self.bucket_size, bucket.available + requested - actual)
        record["actual_cost"] = actual
        self.warnings.extend(ctx.warnings)
        body: dict[str, Any] = {"data": data}
        if errors:
            body["errors"] = errors
        body["extensions"] = {"cost": self._cost(requested, actual, bucket)}
        if search:
            body["extensions"]["search"] = search
        return 200, body, {}

    def _bucket(self, shop: str, app: str) -> _Bucket:
        """The (shop, app) leaky bucket, refilled at restore_rate per second of clock()."""
        now = self.clock()
        bucket = self._buckets.setdefault((shop, app), _Bucket(float(self.bucket_size), now))
        bucket.available = min(float(self.bucket_size), bucket.available + (now - bucket.at) * self.restore_rate)
        bucket.at = now
        return bucket

    def _cost(self, requested: int, actual: int | None, bucket: _Bucket) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": {
            "maximumAvailable": float(self.bucket_size), "currentlyAvailable": int(bucket.available),
            "restoreRate": float(self.restore_rate)}}

    def _visible_since(self) -> datetime | None:
        if self.orders_window_days is None:
            return None
        now = datetime.fromtimestamp(self.wall_clock(), timezone.utc)
        return now - timedelta(days=self.orders_window_days)

    def _subscribe(self, shop: str, app: str, topic: str, uri: str) -> dict[str, Any]:
        # Every create is recorded, duplicates included: tests see what the bot asked for.
        sub = {"topic": topic, "uri": uri, "id": f"gid://shopify/WebhookSubscription/{self._next_id()}"}
        self.subscriptions.setdefault(shop, []).append(sub)
        self._subscription_owner[sub["id"]] = app
        return sub

    def _unsubscribe(self, shop: str, app: str, sub_id: str) -> bool:
        kept = [sub for sub in self.subscriptions.get(shop, [])
                if not (sub["id"] == sub_id and self._subscription_owner.get(sub_id) == app)]
        deleted = len(kept) != len(self.subscriptions.get(shop, []))
        self.subscriptions[shop] = kept
        return deleted

    def add_refund(self, shop: str, order_id: str | int, **fields: Any) -> dict[str, Any]:
        """A refund of an order (bot.sandbox.shopify_refunds.new_refund); its REST `refunds/create` body."""
        with self._lock:
            s, order = self._find(shop, order_id)
            now = datetime.fromtimestamp(self.wall_clock(), timezone.utc)
            return add_refund(order, now, s.timezone, self._next_id, **fields)


# ---- helpers ------------------------------------------------------------------------------


def _max_cost_message(cost: int) -> str:
    return (f"Query cost is {cost}, which exceeds the single query max cost limit ({MAX_COST}).\n\n"
            "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
            "cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
            "See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n")
