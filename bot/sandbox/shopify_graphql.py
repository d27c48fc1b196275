"""The GraphQL Admin API of the Shopify stand-in: just enough GraphQL for the bot's queries.

No GraphQL library: a small tokenizer splits a query into fields (name, arguments with the
variables filled in, sub-selection). That is enough to recognise the root fields the
stand-in serves (`shop`, `orders`, `webhookSubscriptions`, `webhookSubscriptionCreate`),
to answer with only the fields that were asked for, and to price a query the way Shopify
does: objects 1, scalars 0, a connection 2 + first × one node, mutations 10.
Fragments, `last`/`before` and other root fields get an error saying so.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

MAX_COST = 1000  # a single query may request at most this many points
MAX_PAGE = 250
MUTATION_COST = 10
CONNECTIONS = {"orders", "lineItems", "webhookSubscriptions"}
LISTS = {"refunds"}  # `refunds(first: N)` answers a plain list, not a connection
UNSUPPORTED = "unsupported by the stand-in"
PROTECTED_CUSTOMER = (
    "This app is not approved to access the Customer object. "
    "See https://partners.shopify.com/1234567/apps/7654321/customer_data for more details."
)


class QueryError(Exception):
    """A query Shopify would refuse as a whole: answered as `{"errors": [entry]}`."""

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.entry = {"message": message, **extra}


@dataclass
class Field:
    name: str
    alias: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    children: list["Field"] | None = None  # None: a scalar

    @property
    def key(self) -> str:
        return self.alias or self.name

    def child(self, name: str) -> "Field | None":
        return next((c for c in self.children or [] if c.name == name), None)


@dataclass
class Context:
    """What one request may see: the shop, its orders and subscriptions, the token's scopes."""

    shop: dict[str, Any]
    orders: list[dict[str, Any]]
    timezone: ZoneInfo
    scopes: frozenset[str]
    subscriptions: list[dict[str, Any]]
    subscribe: Callable[[str, str], dict[str, Any]]  # (topic, uri) -> the new subscription
    unsubscribe: Callable[[str], bool] = lambda _id: False  # subscription id -> deleted?
    visible_since: datetime | None = None  # read_orders sees only recent orders (opt-in)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more of the shop (bot.sandbox.shopify_inventory)


# ---- parsing ----------------------------------------------------------------------------

# Strings first, so a "#" or brace inside a string literal is never read as syntax.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|#[^\n]*|\.\.\.|\$?[_A-Za-z][_0-9A-Za-z]*|-?\d+(?:\.\d+)?|[{}()\[\]:!=@]')


@dataclass
class Operation:
    kind: str  # "query" or "mutation"
    fields: list[Field]

    def unsupported(self) -> list[str]:
        served = ROOTS[self.kind]
        return [f.key for f in self.fields if f.name not in served]

    def requested_cost(self) -> int:
        if self.kind == "mutation":
            return MUTATION_COST * len(self.fields)
        return sum(_requested(f) for f in self.fields)

    def actual_cost(self, data: dict[str, Any] | None) -> int:
        if self.kind == "mutation":
            return MUTATION_COST * len(self.fields)
        return sum(_actual(f, (data or {}).get(f.key)) for f in self.fields)

    def execute(self, ctx: Context) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """(data, errors, search warnings) — `data` is None when a root field was refused."""
        data: dict[str, Any] | None = {}
        errors: list[dict[str, Any]] = []
        search: list[dict[str, Any]] = []
        for f in self.fields:
            value = ROOTS[self.kind][f.name](f, ctx, errors, search)
            if data is not None:
                data[f.key] = value
            if value is None and f.name == "orders":
                data = None  # ACCESS_DENIED on a non-null root field nulls the whole answer
        return data, errors, search


def parse(query: str, variables: dict[str, Any] | None) -> Operation:
    """The operation's root fields, with variables (and their defaults) substituted."""
    try:
        return _parse(query, variables)
    except (IndexError, ValueError):  # ran off the end, or a malformed literal
        raise QueryError("syntax error in the query (as far as the stand-in can tell)") from None


def _parse(query: str, variables: dict[str, Any] | None) -> Operation:
    tokens = [t for t in _TOKENS.findall(query) if not t.startswith("#")]  # no comments
    if not tokens:
        raise QueryError("syntax error, unexpected end of file")
    kind, i = "query", 0
    if tokens[0] in ("query", "mutation", "subscription"):
        kind, i = tokens[0], 1
        if kind == "subscription":
            raise QueryError(UNSUPPORTED)
        if i < len(tokens) and tokens[i] not in ("(", "{", "@"):
            i += 1  # operation name
    values = dict(variables or {})
    if i < len(tokens) and tokens[i] == "(":
        i = _variable_defaults(tokens, i, values)
    while i < len(tokens) and tokens[i] != "{":
        i += 1  # directives on the operation
    fields, _ = _selection(tokens, i, values)
    return Operation(kind, fields)


def _variable_defaults(tokens: list[str], i: int, values: dict[str, Any]) -> int:
    i += 1
    while tokens[i] != ")":
        name = tokens[i][1:]
        i += 2  # "$name" ":"
        while tokens[i] not in ("=", ")") and not tokens[i].startswith("$"):
            i += 1  # the type: names, "!", "[", "]"
        if tokens[i] == "=":
            default, i = _value(tokens, i + 1, values)
            values.setdefault(name, default)
    return i + 1


def _selection(tokens: list[str], i: int, values: dict[str, Any]) -> tuple[list[Field], int]:
    if tokens[i] != "{":
        raise QueryError(f"syntax error, unexpected {tokens[i]!r}, expecting {{")
    i += 1
    fields: list[Field] = []
    while tokens[i] != "}":
        if tokens[i] == "...":
            if tokens[i + 1] != "on":
                raise QueryError(f"{UNSUPPORTED}: fragment spreads")
            sub, i = _selection(tokens, i + 3, values)  # "..." "on" TypeName {
            fields.extend(sub)  # inline fragments: every type here has the fields asked
            continue
        f, i = Field(tokens[i]), i + 1
        if tokens[i] == ":":
            f.alias, f.name, i = f.name, tokens[i + 1], i + 2
        if tokens[i] == "(":
            f.args, i = _arguments(tokens, i, values)
        while tokens[i] == "@":  # directives: ignored
            i += 2
            if tokens[i] == "(":
                _, i = _arguments(tokens, i, values)
        if tokens[i] == "{":
            f.children, i = _selection(tokens, i, values)
        fields.append(f)
    return fields, i + 1


def _arguments(tokens: list[str], i: int, values: dict[str, Any]) -> tuple[dict[str, Any], int]:
    args: dict[str, Any] = {}
    i += 1
    while tokens[i] != ")":
        name = tokens[i]
        args[name], i = _value(tokens, i + 2, values)
    return args, i + 1


def _value(tokens: list[str], i: int, values: dict[str, Any]) -> tuple[Any, int]:
    token = tokens[i]
    if token.startswith("$"):
        return values.get(token[1:]), i + 1
    if token.startswith('"'):
        return json.loads(token), i + 1  # GraphQL string escapes are JSON's
    if token == "[":
        items, i = [], i + 1
        while tokens[i] != "]":
            item, i = _value(tokens, i, values)
            items.append(item)
        return items, i + 1
    if token == "{":
        obj, i = {}, i + 1
        while tokens[i] != "}":
            obj[tokens[i]], i = _value(tokens, i + 2, values)
        return obj, i + 1
    if re.fullmatch(r"-?\d+", token):
        return int(token), i + 1
    if re.fullmatch(r"-?\d+\.\d+", token):
        return float(token), i + 1
    return {"true": True, "false": False, "null": None}.get(token, token), i + 1  # enums stay strings


# ---- cost -------------------------------------------------------------------------------


def _is_connection(f: Field) -> bool:
    return f.name not in LISTS and (f.name in CONNECTIONS or "first" in f.args or "last" in f.args)


def _node_fields(conn: Field) -> list[Field]:
    nodes = conn.child("nodes")
    if nodes is None and conn.child("edges") is not None:
        nodes = conn.child("edges").child("node")  # type: ignore[union-attr]
    return (nodes.children or []) if nodes is not None else []


def _page_size(f: Field) -> int:
    if "last" in f.args or "before" in f.args:
        raise QueryError(f"{UNSUPPORTED}: last/before (page forwards with first/after)", path=[f.key])
    first = f.args.get("first")
    if first is None:
        raise QueryError("you must provide one of first or last", path=[f.key])
    if not isinstance(first, int) or isinstance(first, bool) or not 1 <= first <= MAX_PAGE:
        raise QueryError(f"The value of first must be between 1 and {MAX_PAGE} (got {first!r}).", path=[f.key])
    return first


def _requested(f: Field) -> int:
    if f.children is None or f.name == "pageInfo" or f.name.startswith("__"):
        return 0  # scalars, and page info, are free
    if _is_connection(f):
        return 2 + _page_size(f) * (1 + sum(_requested(c) for c in _node_fields(f)))
    return 1 + sum(_requested(c) for c in f.children)


def _actual(f: Field, value: Any) -> int:
    """Like _requested, but connections cost what they returned (a null object still cost 1)."""
    if f.children is None or f.name == "pageInfo" or f.name.startswith("__"):
        return 0
    if _is_connection(f):
        if not isinstance(value, dict):
            return 2
        by_nodes, by_edges = f.child("nodes"), f.child("edges")
        node = by_edges.child("node") if by_edges is not None else None
        if by_nodes is not None:
            nodes = value.get(by_nodes.key) or []
        elif by_edges is not None and node is not None:
            nodes = [edge.get(node.key) for edge in value.get(by_edges.key) or []]
        else:
            nodes = []
        fields = _node_fields(f)
        return 2 + sum(1 + sum(_actual(c, (n or {}).get(c.key)) for c in fields) for n in nodes)
    inner = value if isinstance(value, dict) else {}
    return 1 + sum(_actual(c, inner.get(c.key)) for c in f.children)


# ---- answering --------------------------------------------------------------------------


def _project(fields: list[Field], obj: dict[str, Any], path: list[Any], errors: list[dict[str, Any]],
             ctx: Context) -> dict[str, Any]:
    """Only the fields asked for, under their aliases; nested connections are paginated."""
    out: dict[str, Any] = {}
    for f in fields:
        here = path + [f.key]
        if f.name == "customer" and obj.get("_protected"):
            # Like Shopify without protected-customer-data approval: null, an error, data kept.
            out[f.key] = None
            errors.append({"message": PROTECTED_CUSTOMER, "path": here,
                           "extensions": {"code": "ACCESS_DENIED"}})
            continue
        if f.name not in obj and f.name != "__typename":
            ctx.warnings.append(f"field {f.name!r} is not modelled by the stand-in: answered null")
        value = obj.get(f.name)
        if f.children is None or value is None:
            out[f.key] = value
        elif _is_connection(f):
            out[f.key] = connection(f, value, here, errors, ctx)
        elif isinstance(value, list):
            out[f.key] = [_project(f.children, v, here + [n], errors, ctx) for n, v in enumerate(value)]
        else:
            out[f.key] = _project(f.children, value, here, errors, ctx)
    return out


def project(fields: list[Field], obj: dict[str, Any], path: list[Any], errors: list[dict[str, Any]],
            ctx: Context) -> dict[str, Any]:
    """`obj` with only the fields asked for (the root fields of other stand-in modules answer with it)."""
    return _project(fields, obj, path, errors, ctx)


def _cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _uncursor(cursor: Any, f: Field) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)))
    except ValueError:
        raise _bad_cursor(cursor, f) from None


def _bad_cursor(cursor: Any, f: Field) -> QueryError:
    return QueryError(f"Invalid cursor for current pagination sort: {cursor}", path=[f.key])


def connection(f: Field, items: list[dict[str, Any]], path: list[Any], errors: list[dict[str, Any]],
               ctx: Context, key: Callable[[int, dict[str, Any]], Any] = lambda n, _item: n,
               descending: bool = False) -> dict[str, Any]:
    """A page of `items` (already sorted) after the `after` cursor; cursors carry the sort key."""
    first = _page_size(f)
    keys = [key(n, item) for n, item in enumerate(items)]
    start = 0
    if f.args.get("after") is not None:
        last = _uncursor(f.args["after"], f)
        try:  # keyset, like Shopify: orders added meanwhile never shift a page
            start = sum(1 for k in keys if (k >= last if descending else k <= last))
        except TypeError:  # a cursor from another sort order
            raise _bad_cursor(f.args["after"], f) from None
    page = list(zip(keys[start:start + first], items[start:start + first]))
    info = {
        "hasNextPage": start + first < len(items), "hasPreviousPage": start > 0,
        "startCursor": _cursor(page[0][0]) if page else None,
        "endCursor": _cursor(page[-1][0]) if page else None,
    }
    out: dict[str, Any] = {}
    for c in f.children or []:
        if c.name == "nodes":
            out[c.key] = [_project(c.children or [], item, path + [c.key, n], errors, ctx)
                          for n, (_, item) in enumerate(page)]
        elif c.name == "edges":
            out[c.key] = [_edge(c, k, item, path + [c.key, n], errors, ctx) for n, (k, item) in enumerate(page)]
        elif c.name == "pageInfo":
            out[c.key] = {p.key: info.get(p.name) for p in c.children or []}
    return out


def _edge(f: Field, key: Any, item: dict[str, Any], path: list[Any], errors: list[dict[str, Any]],
          ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in f.children or []:
        if c.name == "cursor":
            out[c.key] = _cursor(key)
        elif c.name == "node":
            out[c.key] = _project(c.children or [], item, path + [c.key], errors, ctx)
    return out


# ---- root fields ------------------------------------------------------------------------


def _shop(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    return _project(f.children or [], ctx.shop, [f.key], errors, ctx)


_SORT_KEYS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "ID": lambda o: [order_number(o)],
    "CREATED_AT": lambda o: [o["createdAt"], order_number(o)],
    "UPDATED_AT": lambda o: [o["updatedAt"], order_number(o)],
    "PROCESSED_AT": lambda o: [o.get("processedAt") or o["createdAt"], order_number(o)],
}


def order_number(order: dict[str, Any]) -> int:
    return int(order["id"].rsplit("/", 1)[1])


def _orders(f: Field, ctx: Context, errors: list[dict[str, Any]], search: list[Any]) -> Any:
    if not ctx.scopes & {"read_orders", "write_orders"}:
        errors.append({
            "message": "Access denied for orders field. Required access: `read_orders` access scope.",
            "path": [f.key],
            "extensions": {"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes",
                           "requiredAccess": "`read_orders` access scope."},
        })
        return None
    sort_key = f.args.get("sortKey") or "ID"
    if sort_key not in _SORT_KEYS:
        raise QueryError(f"{UNSUPPORTED}: sortKey {sort_key}", path=[f.key])
    matches, warnings = search_filter(f.args.get("query"), ctx.timezone)
    if warnings:
        search.append({"path": [f.key], "query": f.args.get("query"), "warnings": warnings})
    orders = [o for o in ctx.orders if matches(o)]
    if ctx.visible_since is not None and "read_all_orders" not in ctx.scopes:
        orders = [o for o in orders if parse_time(o["createdAt"]) >= ctx.visible_since]
    descending = bool(f.args.get("reverse"))
    sort = _SORT_KEYS[sort_key]
    orders.sort(key=sort, reverse=descending)
    return connection(f, orders, [f.key], errors, ctx, key=lambda _n, o: sort(o), descending=descending)


def _subscriptions(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    topics = f.args.get("topics")
    subs = [s for s in ctx.subscriptions if not topics or s["topic"] in topics]
    return connection(f, [subscription_view(s) for s in subs], [f.key], errors, ctx)


def _subscription_create(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    topic = f.args.get("topic")
    given = f.args.get("webhookSubscription") or {}
    uri = (given.get("uri") or given.get("callbackUrl")) if isinstance(given, dict) else None
    user_errors = []
    if not isinstance(topic, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", topic):
        user_errors.append({"field": ["topic"], "message": f"Topic {topic!r} is not a valid webhook topic"})
    if not isinstance(uri, str) or not re.match(r"(https?|pubsub|arn):", uri):
        user_errors.append({"field": ["webhookSubscription", "uri"], "message": "Address is invalid"})
    result: dict[str, Any] = {"webhookSubscription": None, "userErrors": user_errors}
    if not user_errors:
        result["webhookSubscription"] = subscription_view(ctx.subscribe(topic, uri))  # type: ignore[arg-type]
    return _project(f.children or [], result, [f.key], errors, ctx)


def _subscription_delete(f: Field, ctx: Context, errors: list[dict[str, Any]], _search: list[Any]) -> Any:
    sub_id = f.args.get("id")
    deleted = isinstance(sub_id, str) and ctx.unsubscribe(sub_id)
    result = {"deletedWebhookSubscriptionId": sub_id if deleted else None,
              "userErrors": [] if deleted else [{"field": ["id"], "message": "Webhook subscription does not exist"}]}
    return _project(f.children or [], result, [f.key], errors, ctx)


def subscription_view(sub: dict[str, Any]) -> dict[str, Any]:
    """A recorded {topic, uri, id} as the GraphQL WebhookSubscription object."""
    return {
        **sub, "callbackUrl": sub["uri"], "format": "JSON", "includeFields": [], "filter": None,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": sub["uri"]},
    }


ROOTS: dict[str, dict[str, Callable[..., Any]]] = {
    "query": {"shop": _shop, "orders": _orders, "webhookSubscriptions": _subscriptions},
    "mutation": {"webhookSubscriptionCreate": _subscription_create, "webhookSubscriptionDelete": _subscription_delete},
}


# ---- search syntax ----------------------------------------------------------------------

_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")
_STATUS_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = {
    ("fulfillment_status", "unfulfilled"): lambda o: o.get("displayFulfillmentStatus") == "UNFULFILLED",
    ("fulfillment_status", "shipped"): lambda o: o.get("displayFulfillmentStatus") == "FULFILLED",
    ("status", "open"): lambda o: not o.get("cancelledAt") and not o.get("closedAt"),
    ("status", "cancelled"): lambda o: bool(o.get("cancelledAt")),
}
_TIME_FIELDS = {"created_at": "createdAt", "updated_at": "updatedAt", "processed_at": "processedAt"}


def search_filter(query: Any, tz: ZoneInfo) -> tuple[Callable[[dict[str, Any]], bool], list[dict[str, str]]]:
    """A predicate for Shopify's search syntax (time fields, AND); other terms are warned about."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    warnings: list[dict[str, str]] = []
    text = str(query or "")
    for word in re.findall(r"\b(OR|NOT)\b", text):
        warnings.append({"field": word, "message": f"{UNSUPPORTED}: {word} in search queries"})
    for name, op, raw in _TERM.findall(text):
        status = _STATUS_CHECKS.get((name, raw.strip("'\"").lower()))
        if status is not None and not op:
            checks.append(status)
            continue
        if name not in _TIME_FIELDS:
            warnings.append({"field": name, "message": "Invalid search field for this query."})
            continue
        bounds = _time_bounds(raw.strip("'\""), tz)
        if bounds is None:
            warnings.append({"field": name, "message": f"Invalid date: {raw}"})
            continue
        checks.append(_time_check(_TIME_FIELDS[name], op, *bounds))
    return (lambda order: all(check(order) for check in checks)), warnings


def _time_bounds(raw: str, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[start, end) of a value: a date means that whole day in the shop's time zone."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            start = datetime.combine(date.fromisoformat(raw), time(), tz)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    return moment, moment + timedelta(seconds=1)


def _time_check(key: str, op: str, start: datetime, end: datetime) -> Callable[[dict[str, Any]], bool]:
    def check(order: dict[str, Any]) -> bool:
        value = order.get(key) or order["createdAt"]
        at = parse_time(value)
        return {">=": at >= start, ">": at >= end, "<": at < start, "<=": at < end}.get(op, start <= at < end)
    return check


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
