"""The Shopify Admin GraphQL client: queries, cursor pagination and cost throttling.

Every query is a POST to `/admin/api/{version}/graphql.json` through `ShopifyHttp`, which
retries 5xx, timeouts and connection failures (queries are read-only, so that is safe).
This module adds what is specific to GraphQL:

- **cost throttling**: the bucket from each answer's `extensions.cost.throttleStatus` is
  remembered with the time it was seen; before a query whose expected requested cost is
  more than the bucket holds by now, we sleep exactly long enough for it to refill. A
  `THROTTLED` answer anyway (HTTP 200 or 429) is waited out and the query sent again.
- **pagination**: `nodes()` walks a connection with `first`/`after`, sizing pages so one
  query never requests more than Shopify's 1,000-point single-query limit.
- **errors**: a 401 first renews the token once, when the install can renew itself (a refresh
  token, client credentials), and asks again; a 401 that stays, or a 403, marks the install
  invalid; `errors` without `data` raise; `errors` beside `data` (protected customer data) are
  logged once and the data returned.
- **shapes**: every page of a connection is checked (`bot.shopify.shapes`): an answer that is
  not what the schema says raises `ShopifyBadAnswer`, never passes as "nothing".

The cost bucket and page sizing live in `bot.shopify.cost`, the orders query in
`bot.shopify.orders_query`.

The access token is sent in a header and never logged or put into an exception.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

import requests

from bot.shopify.client import ShopifyHttp, shop_url
from bot.shopify.cost import FIRST_PAGE_GUESS, MAX_PAGE_SIZE, MAX_QUERY_COST, Pager, ThrottleState
from bot.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyThrottled,
    ShopifyUnavailable,
)
from bot.shopify.shapes import connection_page
from bot.util.progress import QUIET, Progress

log = logging.getLogger(__name__)

__all__ = ["ShopTokenSource", "ShopifyGraphQL"]

MAX_THROTTLED_RETRIES = 20
EPSILON = 0.001  # seconds added to a computed wait: rounding, never a safety margin


class ShopTokenSource(Protocol):
    """Hands out the Admin API token of one shop."""

    def access_token(self) -> str:
        """A valid token for this shop (may refresh)."""
        ...

    def renew_refused(self) -> bool:
        """Shopify answered 401 to the token last handed out: renew it once if the install can (True:
        ask again with `access_token()`); False: nothing to renew with. Raises when the renewal is refused."""
        ...

    def rejected(self, reason: str) -> None:
        """Shopify answered 401/403 for good: mark the install invalid."""
        ...


@dataclass(frozen=True)
class _Answer:
    """One parsed GraphQL answer."""

    data: dict | None
    errors: list[dict]
    cost: dict

    @property
    def codes(self) -> set[str]:
        return {str((error.get("extensions") or {}).get("code") or "") for error in self.errors}

    @property
    def messages(self) -> str:
        """The first line of the first three distinct error messages."""
        lines = dict.fromkeys(str(error.get("message") or "").strip().split("\n", 1)[0] for error in self.errors)
        return "; ".join([line for line in lines if line][:3]) or "no message"

    @property
    def requested_cost(self) -> float | None:
        return _number(self.cost.get("requestedQueryCost"))


class _Throttled(ShopifyThrottled):
    """A THROTTLED answer; paced by `ShopifyGraphQL` itself, never by the HTTP retry policy."""

    retryable = False

    def __init__(self, message: str, *, answer: _Answer | None = None, **kwargs: Any):
        self.answer = answer
        super().__init__(message, **kwargs)


class _MaxCostExceeded(ShopifyGraphQLError):
    """The query asks for more than 1,000 points; `cost` is what it asked, when Shopify says."""

    def __init__(self, message: str, *, cost: float | None = None, **kwargs: Any):
        self.cost = cost
        super().__init__(message, **kwargs)


class ShopifyGraphQL:
    """The Admin GraphQL API of one shop, paced by its cost bucket."""

    def __init__(self, http: ShopifyHttp, *, origin: str, shop: str, api_version: str, tokens: ShopTokenSource,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 progress: Progress = QUIET):
        self.http, self.shop, self.api_version, self.tokens = http, shop, api_version, tokens
        self.progress = progress  # pages, orders so far and throttle waits, for a person at a terminal
        self.url = shop_url(origin, shop, f"/admin/api/{api_version}/graphql.json")
        self.clock, self.sleep = clock, sleep
        self.throttle: ThrottleState | None = None  # None until the first answer
        self.requests_made = 0
        self.cost_spent = 0.0  # sum of actualQueryCost
        self.cost_requested = 0.0  # sum of requestedQueryCost of answered queries
        self.throttled_seen = 0  # THROTTLED answers (should stay 0)
        self.pages_fetched = self.nodes_fetched = 0  # across every connection paged: what progress shows
        self._requested_by_document: dict[str, float] = {}
        self._warned: set[str] = set()

    # -- one query ------------------------------------------------------------------------
    def query(self, document: str, variables: dict | None = None) -> dict:
        """Runs `document` and returns its `data`; waits out throttling, raises ShopifyError otherwise."""
        return self._run(document, variables or {}, expected_cost=self._requested_by_document.get(document))[0]

    def _run(self, document: str, variables: dict, *,
             expected_cost: float | None) -> tuple[dict, float | None]:
        """`data` and the answer's requestedQueryCost."""
        body = {"query": document, "variables": variables}
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            self._wait_for_bucket(expected_cost)
            try:
                answer = self._send(body)
            except _Throttled as exc:
                self.throttled_seen += 1
                expected_cost = self._learn(document, exc.answer) or expected_cost
                if attempt < MAX_THROTTLED_RETRIES:
                    self._sleep(self._throttled_wait(exc, expected_cost), "THROTTLED")
                continue
            return self._data(answer), self._learn(document, answer)
        raise ShopifyThrottled(f"{self.shop}: still THROTTLED after {MAX_THROTTLED_RETRIES} waits; try again later",
                               shop=self.shop)

    def _send(self, body: dict) -> _Answer:
        try:
            response = self._post(body)
        except ShopifyAuthError as exc:
            # An expiring token can be refused before its time (revoked, rotated, clock skew): renew it
            # once and ask again; only a refusal that survives the renewal marks the install.
            if exc.status != 401 or not self.tokens.renew_refused():
                self.tokens.rejected(str(exc))
                raise
            log.info("%s: Shopify refused the access token (HTTP 401); renewed it, asking again", self.shop)
            try:
                response = self._post(body)
            except ShopifyAuthError as again:
                self.tokens.rejected(str(again))
                raise
        self._check_headers(response)
        answer = _parse(response)
        if answer is None:
            raise ShopifyUnavailable(f"{self.shop}: GraphQL answer is not JSON (HTTP {response.status_code})",
                                     status=response.status_code, shop=self.shop)
        self._remember_cost(answer)
        if "THROTTLED" in answer.codes:
            raise _Throttled(f"{self.shop}: THROTTLED", answer=answer, shop=self.shop)
        return answer

    def _post(self, body: dict) -> requests.Response:
        headers = {"X-Shopify-Access-Token": self.tokens.access_token(), "Accept": "application/json"}
        self.requests_made += 1
        try:
            return self.http.call("POST", self.url, json=body, headers=headers, errors=self._http_error)
        except _Throttled as exc:  # HTTP 429
            if exc.answer:
                self._remember_cost(exc.answer)
            raise

    def _data(self, answer: _Answer) -> dict:
        if "MAX_COST_EXCEEDED" in answer.codes:
            cost = next((_number((e.get("extensions") or {}).get("cost")) for e in answer.errors
                         if (e.get("extensions") or {}).get("code") == "MAX_COST_EXCEEDED"), None)
            raise _MaxCostExceeded(f"{self.shop}: query too expensive: {answer.messages}", cost=cost, shop=self.shop)
        if answer.errors and not answer.data:
            raise ShopifyGraphQLError(f"{self.shop}: GraphQL query failed: {answer.messages}", shop=self.shop)
        if any(_denied_root(error) for error in answer.errors):
            # A root field refused for a missing scope comes back null: that is not "nothing there".
            raise ShopifyGraphQLError(f"{self.shop}: access denied: {answer.messages}", shop=self.shop)
        if answer.errors:
            self._warn_once(f"errors:{answer.messages}", "%s: GraphQL answer has errors beside data (fields "
                            "left null, e.g. protected customer data): %s", self.shop, answer.messages)
        if answer.data is None:
            raise ShopifyGraphQLError(f"{self.shop}: GraphQL answer without data", shop=self.shop)
        return answer.data

    def _http_error(self, response: requests.Response) -> ShopifyError:
        """A non-2xx, non-5xx answer as an exception (ShopifyHttp retries 5xx itself)."""
        status = response.status_code
        if status in (401, 403):
            return ShopifyAuthError(
                f"{self.shop}: Shopify refused the stored token (HTTP {status}): the app was uninstalled, the "
                f"token revoked or scopes removed — reconnect the shop with `python -m bot shopify install "
                f"{self.shop}` (or `python -m bot shopify connect {self.shop}` for the merchant's own app)",
                status=status, shop=self.shop)
        answer = _parse(response)
        if status == 429:
            return _Throttled(f"{self.shop}: THROTTLED (HTTP 429)", answer=answer, status=status, shop=self.shop,
                              retry_after=_retry_after(response))
        detail = answer.messages if answer and answer.errors else response.reason or ""
        return ShopifyGraphQLError(f"{self.shop}: GraphQL request failed: HTTP {status} {detail}".strip(),
                                   status=status, shop=self.shop)

    # -- throttling -----------------------------------------------------------------------
    def _wait_for_bucket(self, cost: float | None) -> None:
        if cost is None or self.throttle is None:
            return
        wait = self.throttle.wait_for(cost, self.clock())
        if wait > 0:
            self._sleep(wait + EPSILON, "cost bucket")

    def _throttled_wait(self, exc: _Throttled, cost: float | None) -> float:
        """deficit / restoreRate from the answer's bucket, else Retry-After, else 1 s."""
        status = (exc.answer.cost.get("throttleStatus") if exc.answer else None) or {}
        if status and cost is not None and self.throttle is not None:
            wait = self.throttle.wait_for(cost, self.clock())
            if wait > 0:
                return wait + EPSILON
        if exc.retry_after is not None and exc.retry_after > 0:
            return exc.retry_after
        return 1.0

    def _remember_cost(self, answer: _Answer) -> None:
        status = answer.cost.get("throttleStatus")
        if isinstance(status, dict):
            maximum, available = _number(status.get("maximumAvailable")), _number(status.get("currentlyAvailable"))
            rate = _number(status.get("restoreRate"))
            if maximum is not None and available is not None and rate is not None:
                self.throttle = ThrottleState(maximum, available, rate, self.clock())
        actual = _number(answer.cost.get("actualQueryCost"))
        self.cost_spent += actual or 0.0
        if actual is not None:
            self.cost_requested += answer.requested_cost or 0.0

    def _learn(self, document: str, answer: _Answer | None) -> float | None:
        """The answer's requested cost, remembered for the document's next proactive wait."""
        requested = answer.requested_cost if answer else None
        if requested is not None:
            self._requested_by_document[document] = requested
        return requested

    def _sleep(self, seconds: float, why: str) -> None:
        log.debug("%s: waiting %.3fs for the %s", self.shop, seconds, why)
        self.progress.waiting(self.shop, seconds, why)
        self.sleep(seconds)

    # -- headers --------------------------------------------------------------------------
    def _check_headers(self, response: requests.Response) -> None:
        deprecated = response.headers.get("X-Shopify-API-Deprecated-Reason")
        if deprecated:
            self._warn_once("deprecated", "%s: Shopify reports deprecated API use: %s", self.shop, deprecated)
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != self.api_version:
            self._warn_once("version", "%s: API version %s was requested but Shopify served %s (the requested "
                            "version is unsupported): update [shopify].api_version", self.shop,
                            self.api_version, served)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key in self._warned:
            log.debug(message, *args)
            return
        self._warned.add(key)
        log.warning(message, *args)

    # -- pagination -----------------------------------------------------------------------
    def nodes(self, document: str, variables: dict, path: Sequence[str], *, page_size: int | None = None,
              node_cost: int | None = None) -> Iterator[dict]:
        """Every node of the connection at `path` in `data`, page after page, in order.

        `document` declares `$first: Int!` and `$after: String` and selects `nodes` and
        `pageInfo {hasNextPage endCursor}` on the connection. Pages are as large as the
        1,000-point limit allows (at most `page_size`, at most 250); the node cost is
        `node_cost`, else learned from each answer's requestedQueryCost.
        """
        _check_paging_variables(document)
        pager = Pager(cap=min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE), node_cost=node_cost,
                       guess=page_size or FIRST_PAGE_GUESS)
        after: str | None = None
        while True:
            first = pager.size(self._cost_limit())
            try:
                data, requested = self._run(document, {**variables, "first": first, "after": after},
                                            expected_cost=pager.expected_cost(first))
            except _MaxCostExceeded as exc:
                if first <= 1:
                    raise
                pager.too_expensive(first, exc.cost)
                log.info("%s: a page of %d costs too much (%s); trying %d", self.shop, first,
                         exc.cost or "over 1000", pager.size(self._cost_limit()))
                continue
            pager.learn(first, requested)
            page = connection_page(data, path, self.shop)  # ShopifyBadAnswer unless the schema's shape
            self.pages_fetched, self.nodes_fetched = self.pages_fetched + 1, self.nodes_fetched + len(page.nodes)
            # The client's totals, not this connection's: a digest pages several windows through one client.
            self.progress.page(self.shop, self.pages_fetched, self.nodes_fetched)
            yield from page.nodes
            after = _next_cursor(page.next_cursor, after)
            if after is None:
                return

    def _cost_limit(self) -> float:
        """A query may request at most 1,000 points, and never more than the bucket can hold."""
        if self.throttle is None or self.throttle.maximum <= 0:
            return MAX_QUERY_COST
        return min(MAX_QUERY_COST, self.throttle.maximum)


def _check_paging_variables(document: str) -> None:
    if not re.search(r"\$first\s*:\s*Int!", document) or not re.search(r"\$after\s*:\s*String\b", document):
        raise ValueError("a paginated document must declare `$first: Int!` and `$after: String`")


def _next_cursor(cursor: str | None, previous: str | None) -> str | None:
    if cursor is not None and cursor == previous:
        log.warning("GraphQL connection says hasNextPage with the same endCursor again; stopping")
        return None
    return cursor


def _parse(response: requests.Response) -> _Answer | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else None
    extensions = body.get("extensions") if isinstance(body.get("extensions"), dict) else {}
    cost = extensions.get("cost") if isinstance(extensions.get("cost"), dict) else {}
    return _Answer(data, _errors(body.get("errors")), cost)


def _denied_root(error: dict) -> bool:
    path = error.get("path")
    return (error.get("extensions") or {}).get("code") == "ACCESS_DENIED" and isinstance(path, list) and len(path) == 1


def _errors(raw: Any) -> list[dict]:
    """`errors` is a list of objects; some 4xx answers carry a plain string instead."""
    if isinstance(raw, list):
        return [error for error in raw if isinstance(error, dict)]
    return [{"message": str(raw)}] if raw else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
