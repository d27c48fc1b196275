"""The `scrape` job kind: the texts a CSS selector matches on a web page become the message.

Polite to the page: conditional GETs (ETag / Last-Modified) reuse the stored items on 304,
and the body read is capped. `only_if_changed` reports nothing when the items are the
ones last delivered; that memory is written only after a delivery went out.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from bot.config.model import ConfigError, JobConfig
from jobs.base import JobContext, JobFailed, Outcome
from jobs.render import message_for

KIND = "scrape"
SCHEDULED = True
PARAM_KEYS = frozenset({"url", "select", "only_if_changed", "max_items", "timeout"})

MAX_ITEMS_LIMIT = 100
MAX_BODY_BYTES = 5 * 1024 * 1024  # a menu page, not a download: refuse anything bigger
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
# Korean pages that say EUC-KR routinely use CP949's extra syllables; CP949 is a superset.
_CHARSET_ALIASES = {"euc-kr": "cp949", "euc_kr": "cp949", "ks_c_5601-1987": "cp949"}


@dataclass(frozen=True)
class ScrapeParams:
    url: str
    select: str
    only_if_changed: bool = False
    max_items: int = 20
    timeout: float = 10.0


def parse_params(raw: dict[str, Any], fail: Callable[[str, str], ConfigError]) -> ScrapeParams:
    """Typed params from the job's table; `fail(key, why)` builds the error to raise."""
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("url", "required: the http(s) address of the page")
    url = url.strip()
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise fail("url", f"bad port in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("url", f"must be an http(s) URL with a host, got {url!r}")

    select = raw.get("select")
    if not isinstance(select, str) or not select.strip():
        raise fail("select", "required: a CSS selector such as \"ul.menu > li\"")
    # Imported here and in _extract: a bot without scrape jobs never loads bs4/soupsieve (~2 MB resident).
    import soupsieve

    try:
        soupsieve.compile(select)
    except soupsieve.SelectorSyntaxError as exc:
        reason = str(exc).splitlines()[0]
        raise fail("select", f"not a valid CSS selector: {reason}") from None
    except Exception as exc:  # soupsieve raises other types for a few unsupported forms
        raise fail("select", f"not a valid CSS selector: {exc}") from None

    only_if_changed = raw.get("only_if_changed", False)
    if not isinstance(only_if_changed, bool):
        raise fail("only_if_changed", "must be true or false")

    max_items = raw.get("max_items", 20)
    if isinstance(max_items, bool) or not isinstance(max_items, int):
        raise fail("max_items", f"must be an integer, got {type(max_items).__name__}")
    if not 1 <= max_items <= MAX_ITEMS_LIMIT:
        raise fail("max_items", f"must be between 1 and {MAX_ITEMS_LIMIT}, got {max_items}")

    timeout = raw.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise fail("timeout", f"must be a number of seconds, got {type(timeout).__name__}")
    if not 1 <= timeout <= 60:
        raise fail("timeout", f"must be between 1 and 60 seconds, got {timeout}")

    return ScrapeParams(url, select, only_if_changed, max_items, float(timeout))


def collect(job: JobConfig, ctx: JobContext) -> Outcome:
    """Fetch the page (or reuse the stored items on 304) and report the matched texts."""
    params: ScrapeParams = job.params
    items = _fetch_items(job.name, params, ctx)
    shown = items[: params.max_items]
    # Items have their whitespace collapsed, so a newline joins them unambiguously.
    fingerprint = hashlib.sha256("\n".join(shown).encode("utf-8")).hexdigest()
    unchanged = params.only_if_changed and fingerprint == ctx.state.get("last_sent_fingerprint")
    return Outcome(
        context={"items": shown, "url": params.url, "count": len(shown), "unchanged": unchanged},
        empty=not shown or unchanged,
        fingerprint=fingerprint,
        link=params.url,
        on_delivered=[("last_sent_fingerprint", fingerprint)],
    )


render = message_for  # the built-in template or the job's own (jobs.render)


def _fetch_items(name: str, params: ScrapeParams, ctx: JobContext) -> list[str]:
    state = ctx.state
    stored = state.get("items")
    # Validators only mean something for items scraped from this URL with this selector.
    cached = (
        isinstance(stored, list)
        and state.get("url") == params.url
        and state.get("select") == params.select
    )
    headers = {}
    if cached:
        if state.get("etag"):
            headers["If-None-Match"] = state.get("etag")
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state.get("last_modified")

    where = _display(params.url)
    try:
        with ctx.http.get(params.url, headers=headers, timeout=params.timeout, stream=True) as response:
            if response.status_code == 304:
                if not cached:
                    raise JobFailed(f"{name}: {where} answered 304 but no earlier copy is stored")
                _remember_validators(state, response)
                return list(stored)
            if not 200 <= response.status_code < 300:
                raise JobFailed(f"{name}: {where} answered {response.status_code}",
                                retryable=response.status_code >= 500 or response.status_code == 429)
            body = _read_capped(response, name, where)
            content_type = response.headers.get("Content-Type", "")
            items = _extract(body, _charset(content_type), params.select)
            etag, last_modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    except requests.Timeout:
        raise JobFailed(f"{name}: {where} did not answer within {params.timeout:g} s", retryable=True) from None
    except requests.ConnectionError as exc:
        # requests reports a read timeout in the middle of the body as a ConnectionError.
        if any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
            raise JobFailed(f"{name}: {where} did not answer within {params.timeout:g} s", retryable=True) from None
        raise JobFailed(f"{name}: could not connect to {where}", retryable=True) from None
    except requests.TooManyRedirects:
        raise JobFailed(f"{name}: {where} redirects in a loop") from None
    except requests.RequestException as exc:
        raise JobFailed(f"{name}: fetching {where} failed ({type(exc).__name__})") from None

    state.set("url", params.url)
    state.set("select", params.select)
    state.set("etag", etag)  # cleared when the server stopped sending one
    state.set("last_modified", last_modified)
    state.set("items", items)
    return items


def _remember_validators(state: Any, response: requests.Response) -> None:
    # A 304 may carry fresher validators; keep the old ones when it does not.
    if response.headers.get("ETag"):
        state.set("etag", response.headers["ETag"])
    if response.headers.get("Last-Modified"):
        state.set("last_modified", response.headers["Last-Modified"])


def _read_capped(response: requests.Response, name: str, where: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise JobFailed(f"{name}: {where} is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _charset(content_type: str) -> str | None:
    match = _CHARSET.search(content_type)
    if not match:
        return None  # let BeautifulSoup read <meta charset> or sniff
    charset = match.group(1).lower()
    charset = _CHARSET_ALIASES.get(charset, charset)
    try:
        codecs.lookup(charset)
    except LookupError:
        return None  # an unknown label is no better than none
    return charset


def _extract(body: bytes, charset: str | None, selector: str) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser", from_encoding=charset)
    texts = (" ".join(element.get_text(" ").split()) for element in soup.select(selector))
    # Stored uncut (up to the largest max_items) so raising max_items works on a 304.
    return [text for text in texts if text][:MAX_ITEMS_LIMIT]


def _display(url: str) -> str:
    # Query strings may carry keys; messages and logs name the page without them.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
