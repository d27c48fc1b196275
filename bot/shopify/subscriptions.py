"""Shop-specific webhook subscriptions, made with the GraphQL Admin API.

`subscribe(gql, uri)` makes sure the shop sends TOPICS to `uri`: it lists the subscriptions
the app already has there and creates only the missing ones, so running it again (a second
install, `shopify connect` repeated, two instances racing) never makes duplicates. Used for
shops connected by OAuth, client credentials or a pasted token; an app distributed through
the App Store declares its app-specific subscriptions (and the mandatory compliance topics)
in `shopify.app.toml` instead — `python -m bot shopify app-toml` prints them.

API 2025-10 unified the address as `uri` (input and output); older versions only know
`callbackUrl` (input) and `endpoint { ... on WebhookHttpEndpoint { callbackUrl } }` (output).
The documents are chosen by `[shopify].api_version`, and an answer in either shape is read.

`sync(gql, uri, topics)` keeps a shop's subscriptions at `uri` in step with the topics the configured
jobs need (bot.connect.webhook_needs): the missing ones are created, ours (at `uri`, and only there)
that no job needs are deleted with `webhookSubscriptionDelete`. Topics are written as Shopify's REST
names ("orders/create"); `graphql_topic` turns them into the GraphQL enum ("ORDERS_CREATE").
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable

from bot.shopify.errors import ShopifyError
from bot.shopify.graphql import ShopifyGraphQL
from bot.util.report_logging import IN_REPORT

log = logging.getLogger(__name__)

TOPICS = ("ORDERS_CREATE", "ORDERS_UPDATED", "APP_UNINSTALLED")
PAGE_SIZE = 50
UNIFIED_URI_SINCE = "2025-10"  # first API version with WebhookSubscription.uri

EXISTING_QUERY = """\
query WebhookSubscriptions($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]) {
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {
    nodes { id topic %s }
    pageInfo { hasNextPage endCursor }
  }
}
"""
URI_FIELDS = "uri"
LEGACY_URI_FIELDS = "endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } }"

CREATE_MUTATION = """\
mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: %s!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {%s: $uri, format: JSON}) {
    webhookSubscription { id topic %s }
    userErrors { field message }
  }
}
"""


DELETE_MUTATION = """\
mutation WebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}
"""


def graphql_topic(topic: str) -> str:
    """"orders/create" → "ORDERS_CREATE" (an enum already is left as it is)."""
    return topic.replace("/", "_").upper()


def webhook_uri(public_url: str, app_name: str) -> str:
    """Where Shopify delivers `app_name`'s webhooks: `POST /shopify/<app>/webhooks` of `run` at `public_url`."""
    return f"{public_url.rstrip('/')}/shopify/{app_name}/webhooks"


def _unified(api_version: str) -> bool:
    # "YYYY-MM" compares as text; "unstable" (letters sort after digits) is the newest.
    return api_version >= UNIFIED_URI_SINCE


def _address(node: Any) -> str | None:
    """A subscription's address, whichever shape the answer has."""
    if not isinstance(node, dict):
        return None
    for value in (node.get("uri"), node.get("callbackUrl"), (node.get("endpoint") or {}).get("callbackUrl")
                  if isinstance(node.get("endpoint"), dict) else None):
        if isinstance(value, str) and value:
            return value
    return None


def existing(gql: ShopifyGraphQL, topics: Iterable[str] = TOPICS) -> list[tuple[str, str | None]]:
    """(topic, address) of the app's subscriptions on this shop for `topics`."""
    fields = URI_FIELDS if _unified(gql.api_version) else LEGACY_URI_FIELDS
    return [(str(node.get("topic")), _address(node))
            for node in gql.nodes(EXISTING_QUERY % fields, {"topics": list(topics)}, ["webhookSubscriptions"],
                                  page_size=PAGE_SIZE)]


def ours(gql: ShopifyGraphQL, uri: str) -> list[tuple[str, str]]:
    """(id, topic) of every subscription of the app on this shop delivered to `uri`."""
    fields = URI_FIELDS if _unified(gql.api_version) else LEGACY_URI_FIELDS
    return [(str(node.get("id")), str(node.get("topic")))
            for node in gql.nodes(EXISTING_QUERY % fields, {"topics": None}, ["webhookSubscriptions"],
                                  page_size=PAGE_SIZE)
            if _address(node) == uri and isinstance(node.get("id"), str)]


def unsubscribe(gql: ShopifyGraphQL, subscription_id: str) -> bool:
    """Delete one subscription; False if Shopify says it is gone already, ShopifyError if refused."""
    data = gql.query(DELETE_MUTATION, {"id": subscription_id})
    result = (data or {}).get("webhookSubscriptionDelete")
    if not isinstance(result, dict):
        raise ShopifyError(f"{gql.shop}: webhookSubscriptionDelete answered without a result", shop=gql.shop)
    errors = [error for error in result.get("userErrors") or [] if isinstance(error, dict)]
    if errors:
        messages = "; ".join(str(error.get("message") or error) for error in errors)
        if all("not exist" in str(error.get("message") or "").lower() for error in errors):
            return False  # another instance deleted it meanwhile: what we wanted
        raise ShopifyError(f"{gql.shop}: Shopify refused to delete the webhook subscription {subscription_id}: "
                           f"{messages}", shop=gql.shop)
    return True


def sync(gql: ShopifyGraphQL, uri: str, topics: Iterable[str]) -> tuple[list[str], list[str]]:
    """Subscribe the missing `topics` (REST names) at `uri` and delete ours there that are not among
    them; returns (created, deleted) as GraphQL topics."""
    wanted = tuple(dict.fromkeys(graphql_topic(topic) for topic in topics))
    created = subscribe(gql, uri, wanted)
    deleted = []
    for subscription_id, topic in ours(gql, uri):
        if topic not in wanted and unsubscribe(gql, subscription_id):
            deleted.append(topic)
            log.info("%s: unsubscribed %s at %s: no configured job needs it", gql.shop, topic, uri, extra=IN_REPORT)
    return created, deleted


def subscribe(gql: ShopifyGraphQL, uri: str, topics: Iterable[str] = TOPICS) -> list[str]:
    """Subscribe the shop of `gql` to `topics` at `uri`; returns the topics newly created.

    Idempotent: a topic already delivered to `uri` is left alone. A create refused with
    `userErrors` raises ShopifyError (and is logged), except "already taken" — another
    caller created the same subscription meanwhile, which is what we wanted.
    """
    topics = tuple(topics)
    have = existing(gql, topics)
    present = {topic for topic, address in have if address == uri}
    for topic, address in have:
        if topic in topics and address != uri:
            log.info("%s: %s is also delivered to %s (not this server's %s); left as it is",
                     gql.shop, topic, address, uri)
    unified = _unified(gql.api_version)
    mutation = CREATE_MUTATION % (("String", "uri", URI_FIELDS) if unified else ("URL", "callbackUrl",
                                                                                  LEGACY_URI_FIELDS))
    created: list[str] = []
    for topic in topics:
        if topic in present:
            continue
        data = gql.query(mutation, {"topic": topic, "uri": uri})
        result = (data or {}).get("webhookSubscriptionCreate")
        if not isinstance(result, dict):
            raise ShopifyError(f"{gql.shop}: webhookSubscriptionCreate({topic}) answered without a result",
                               shop=gql.shop)
        errors = [error for error in result.get("userErrors") or [] if isinstance(error, dict)]
        if errors:
            messages = "; ".join(str(error.get("message") or error) for error in errors)
            if all("taken" in str(error.get("message") or "").lower() for error in errors):
                log.info("%s: %s at %s already exists (%s)", gql.shop, topic, uri, messages)
                continue
            log.error("%s: could not subscribe %s to %s: %s", gql.shop, topic, uri, messages, extra=IN_REPORT)
            raise ShopifyError(f"{gql.shop}: Shopify refused the webhook subscription {topic} → {uri}: {messages}",
                               shop=gql.shop)
        created.append(topic)
        log.info("%s: subscribed %s → %s", gql.shop, topic, uri, extra=IN_REPORT)
    return created


# -- shopify.app.toml ---------------------------------------------------------------------------

TOML_TOPICS = ("orders/create", "orders/updated", "app/uninstalled")  # TOPICS, as the TOML names them
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(value) for value in values) + "]"


def app_toml(*, public_url: str, api_version: str, app_name: str, scopes: Iterable[str], client_id: str,
             topics: Iterable[str] = TOML_TOPICS) -> str:
    """The `shopify.app.toml` settings that make Shopify use this server for the app `app_name`.

    `embedded = true`: the admin frames the app URL, which serves the app home (App Bridge and
    Polaris; bot.web.app_home) where each merchant sets up their KakaoTalk news; with the scopes
    declared here Shopify installs the app itself (Shopify-managed installation) and the page gets
    the shop's token by token exchange. `name` is left out on purpose: a
    deploy would rename the app to whatever is printed here. `topics`: the REST topic names the
    configured jobs need (bot.connect.webhook_needs), app/uninstalled among them.
    """
    base = public_url.rstrip("/")
    uri = webhook_uri(public_url, app_name)
    return "\n".join([
        f"# shopify.app.toml settings for app {app_name!r} served by {base}",
        "# (printed by `python -m bot shopify app-toml`). Merge them into the app's configuration file",
        "# — keep your own `name` — and run `shopify app deploy`.",
        f"client_id = {_toml_string(client_id)}",
        f"application_url = {_toml_string(f'{base}/shopify/{app_name}')}",
        "embedded = true",
        "",
        "[access_scopes]",
        f"scopes = {_toml_string(','.join(scopes))}",
        "",
        "[auth]",
        f"redirect_urls = {_toml_list([f'{base}/shopify/{app_name}/callback'])}",
        "",
        "[webhooks]",
        f"api_version = {_toml_string(api_version)}",
        "",
        "# App-specific subscriptions, for every shop the app is installed on.",
        "[[webhooks.subscriptions]]",
        f"topics = {_toml_list(topics)}",
        f"uri = {_toml_string(uri)}",
        "",
        "# Mandatory for apps distributed through the Shopify App Store.",
        "[[webhooks.subscriptions]]",
        f"compliance_topics = {_toml_list(COMPLIANCE_TOPICS)}",
        f"uri = {_toml_string(uri)}",
        "",
    ])
