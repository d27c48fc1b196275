"""The `scrape` job kind: params validation, fetching with validators, change detection."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from bot.config.model import JobConfig
from bot.util.retry import can_pass
from jobs import job_kind, scrape
from jobs.base import JobContext, JobFailed
from jobs.scrape import ScrapeParams

URL = "https://example.com/menu"
DOMAIN = "https://bot.example.com"
PAGE = """<html><body><ul class="menu">
  <li>김치찌개   <b>8,000원</b></li>
  <li>
     된장찌개
  </li>
  <li>   </li>
  <li>제육볶음</li>
</ul><p>other</p></body></html>"""
ITEMS = ["김치찌개 8,000원", "된장찌개", "제육볶음"]


class DictState:
    """In-memory stand-in for the persisted job state."""

    def __init__(self, **values: Any):
        self.values = dict(values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


class ConfigProblem(Exception):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def _parse(**raw: Any) -> ScrapeParams:
    return scrape.parse_params(raw, ConfigProblem)


def _job(**params: Any) -> JobConfig:
    return JobConfig(name="menu", kind="scrape", at=("noon",), to=(), params=ScrapeParams(URL, "ul.menu > li", **params))


def _ctx(state: DictState | None = None) -> JobContext:
    return JobContext(state=state or DictState(), http=requests.Session(), now=datetime(2026, 11, 23, 12, tzinfo=ZoneInfo("Asia/Seoul")))


def _fingerprint(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


# -- params -------------------------------------------------------------------------------
def test_registered_kind():
    assert job_kind("scrape") is scrape
    assert scrape.SCHEDULED is True


def test_parse_params_defaults_and_values():
    assert _parse(url=URL, select="ul.menu > li") == ScrapeParams(URL, "ul.menu > li", False, 20, 10.0)
    params = _parse(url=URL, select="li", only_if_changed=True, max_items=5, timeout=3)
    assert params == ScrapeParams(URL, "li", True, 5, 3.0)
    assert isinstance(params.timeout, float)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"select": "li"}, "url"),
        ({"url": "ftp://example.com/menu", "select": "li"}, "url"),
        ({"url": "example.com/menu", "select": "li"}, "url"),
        ({"url": "https:///menu", "select": "li"}, "url"),
        ({"url": "https://example.com:99999/", "select": "li"}, "url"),
        ({"url": URL}, "select"),
        ({"url": URL, "select": "ul.menu >"}, "select"),
        ({"url": URL, "select": "li[[["}, "select"),
        ({"url": URL, "select": "li", "only_if_changed": "yes"}, "only_if_changed"),
        ({"url": URL, "select": "li", "max_items": 0}, "max_items"),
        ({"url": URL, "select": "li", "max_items": 101}, "max_items"),
        ({"url": URL, "select": "li", "max_items": True}, "max_items"),
        ({"url": URL, "select": "li", "max_items": 2.5}, "max_items"),
        ({"url": URL, "select": "li", "timeout": 0.5}, "timeout"),
        ({"url": URL, "select": "li", "timeout": 61}, "timeout"),
        ({"url": URL, "select": "li", "timeout": "10"}, "timeout"),
    ],
)
def test_parse_params_refuses(raw, key):
    with pytest.raises(ConfigProblem) as caught:
        scrape.parse_params(raw, ConfigProblem)
    assert caught.value.key == key


def test_bad_selector_says_why():
    with pytest.raises(ConfigProblem, match="not a valid CSS selector"):
        _parse(url=URL, select="ul.menu >")


# -- collect ------------------------------------------------------------------------------
@responses.activate
def test_selector_extracts_collapsed_texts_and_stores_validators():
    responses.get(URL, body=PAGE.encode(), content_type="text/html; charset=utf-8",
                  headers={"ETag": '"v1"', "Last-Modified": "Mon, 23 Nov 2026 01:00:00 GMT"})
    state = DictState()
    outcome = scrape.collect(_job(), _ctx(state))
    assert outcome.context == {"items": ITEMS, "url": URL, "count": 3, "unchanged": False}
    assert not outcome.empty
    assert outcome.link == URL
    assert outcome.fingerprint == _fingerprint(ITEMS)
    assert outcome.on_delivered == [("last_sent_fingerprint", _fingerprint(ITEMS))]
    assert state.get("etag") == '"v1"'
    assert state.get("last_modified") == "Mon, 23 Nov 2026 01:00:00 GMT"
    assert state.get("items") == ITEMS
    assert "last_sent_fingerprint" not in state.values  # only once delivered
    request = responses.calls[0].request
    assert "If-None-Match" not in request.headers
    assert "If-Modified-Since" not in request.headers


@responses.activate
def test_max_items_keeps_the_first():
    responses.get(URL, body=PAGE, content_type="text/html")
    outcome = scrape.collect(_job(max_items=2), _ctx())
    assert outcome.context["items"] == ITEMS[:2]
    assert outcome.context["count"] == 2


@responses.activate
def test_304_reuses_the_stored_items():
    responses.get(URL, status=304)
    state = DictState(etag='"v1"', last_modified="Mon, 23 Nov 2026 01:00:00 GMT", items=ITEMS, url=URL, select="ul.menu > li")
    outcome = scrape.collect(_job(), _ctx(state))
    assert outcome.context["items"] == ITEMS
    assert not outcome.empty
    request = responses.calls[0].request
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == "Mon, 23 Nov 2026 01:00:00 GMT"


@responses.activate
def test_validators_of_another_selector_are_not_sent():
    responses.get(URL, body=PAGE, content_type="text/html")
    state = DictState(etag='"v1"', items=["old"], url=URL, select="ol > li")
    outcome = scrape.collect(_job(), _ctx(state))
    assert "If-None-Match" not in responses.calls[0].request.headers
    assert outcome.context["items"] == ITEMS
    assert state.get("select") == "ul.menu > li"
    assert state.get("etag") is None


@responses.activate
def test_only_if_changed_unchanged_is_empty():
    responses.get(URL, body=PAGE, content_type="text/html")
    state = DictState(last_sent_fingerprint=_fingerprint(ITEMS))
    outcome = scrape.collect(_job(only_if_changed=True), _ctx(state))
    assert outcome.empty
    assert outcome.context["unchanged"] is True


@responses.activate
def test_only_if_changed_changed_is_not_empty():
    responses.get(URL, body=PAGE, content_type="text/html")
    state = DictState(last_sent_fingerprint=_fingerprint(["김치찌개 8,000원"]))
    outcome = scrape.collect(_job(only_if_changed=True), _ctx(state))
    assert not outcome.empty
    assert outcome.context["unchanged"] is False
    assert outcome.on_delivered == [("last_sent_fingerprint", _fingerprint(ITEMS))]


@responses.activate
def test_same_content_without_only_if_changed_is_still_sent():
    responses.get(URL, body=PAGE, content_type="text/html")
    outcome = scrape.collect(_job(), _ctx(DictState(last_sent_fingerprint=_fingerprint(ITEMS))))
    assert not outcome.empty


@responses.activate
def test_no_match_is_empty():
    responses.get(URL, body="<html><p>closed today</p></html>", content_type="text/html")
    outcome = scrape.collect(_job(), _ctx())
    assert outcome.empty
    assert outcome.context["items"] == []


@responses.activate
def test_charset_from_the_header_is_honoured():
    body = '<ul class="menu"><li>똠방각하 비빔밥</li></ul>'.encode("cp949")  # 똠 exists only in CP949
    responses.get(URL, body=body, content_type="text/html; charset=EUC-KR")
    assert scrape.collect(_job(), _ctx()).context["items"] == ["똠방각하 비빔밥"]


@responses.activate
def test_charset_from_the_page_when_the_header_has_none():
    html = '<html><head><meta charset="euc-kr"></head><body><ul class="menu"><li>김밥</li></ul></body></html>'
    responses.get(URL, body=html.encode("euc-kr"), content_type="text/html")
    assert scrape.collect(_job(), _ctx()).context["items"] == ["김밥"]


@responses.activate
def test_server_error_fails_the_job():
    responses.get(URL, status=500)
    with pytest.raises(JobFailed, match=r"^menu: https://example.com/menu answered 500$"):
        scrape.collect(_job(), _ctx())


@pytest.mark.parametrize("status, passing", [(500, True), (503, True), (429, True), (404, False), (403, False)])
@responses.activate
def test_only_a_failure_that_can_pass_is_marked_for_a_retry(status, passing):
    """A 5xx or 429 may pass (the service retries the slot within its grace); a 404 or 403 will not."""
    responses.get(URL, status=status)
    with pytest.raises(JobFailed) as caught:
        scrape.collect(_job(), _ctx())
    assert can_pass(caught.value) is passing


@pytest.mark.parametrize("error", [requests.ReadTimeout("slow"), requests.ConnectionError("refused")])
@responses.activate
def test_an_unreachable_page_is_marked_for_a_retry(error):
    responses.get(URL, body=error)
    with pytest.raises(JobFailed) as caught:
        scrape.collect(_job(), _ctx())
    assert can_pass(caught.value)


@responses.activate
def test_timeout_fails_the_job():
    responses.get(URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(JobFailed, match="did not answer within 10 s"):
        scrape.collect(_job(), _ctx())


@responses.activate
def test_connection_error_fails_the_job_without_the_query_string():
    url = URL + "?key=SECRET"
    responses.get(url, body=requests.ConnectionError("refused"))
    job = JobConfig(name="menu", kind="scrape", at=("noon",), to=(), params=ScrapeParams(url, "li"))
    with pytest.raises(JobFailed) as caught:
        scrape.collect(job, _ctx())
    assert str(caught.value) == "menu: could not connect to https://example.com/menu"


@responses.activate
def test_oversized_page_fails_the_job(monkeypatch):
    monkeypatch.setattr(scrape, "MAX_BODY_BYTES", 100)
    responses.get(URL, body=PAGE, content_type="text/html")
    with pytest.raises(JobFailed, match="larger than"):
        scrape.collect(_job(), _ctx())


# -- render -------------------------------------------------------------------------------
@responses.activate
def test_render_builds_a_text_message_linking_to_the_page():
    responses.get(URL, body=PAGE, content_type="text/html")
    job = _job()
    outcome = scrape.collect(job, _ctx())
    message = scrape.render(job, outcome, audience="me", web_domain="https://example.com", default_link="https://example.com")
    assert message["text"] == "📋 menu (3건)\n• 김치찌개 8,000원\n• 된장찌개\n• 제육볶음"
    assert message["link"]["web_url"] == URL
    # a page outside the registered Kakao domain is linked through the domain instead
    other = scrape.render(job, outcome, audience="me", web_domain=DOMAIN, default_link=DOMAIN)
    assert other["link"]["web_url"] == DOMAIN
