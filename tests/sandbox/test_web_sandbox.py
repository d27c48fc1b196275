"""The page server over real HTTP: ETag / Last-Modified, 304s, pages changed at runtime; serve()."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
import requests

from bot.sandbox.server import serve
from bot.sandbox.web import DEMO_MENU_HTML, create_web_app


@pytest.fixture
def site(request: pytest.FixtureRequest):
    pages = {"/menu": DEMO_MENU_HTML}
    app = create_web_app(pages)
    server = serve(app)
    request.addfinalizer(server.close)
    return app, pages, server.url + "/menu"


def test_page_has_strong_etag_and_last_modified(site) -> None:
    _, _, url = site
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "김치찌개" in answer.text
    assert answer.headers["ETag"].startswith('"')  # strong: no W/ prefix
    assert parsedate_to_datetime(answer.headers["Last-Modified"])


def test_conditional_requests_get_304(site) -> None:
    _, _, url = site
    first = requests.get(url, timeout=5)
    by_etag = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert by_etag.status_code == 304 and by_etag.content == b""
    by_date = requests.get(url, headers={"If-Modified-Since": first.headers["Last-Modified"]}, timeout=5)
    assert by_date.status_code == 304
    other = requests.get(url, headers={"If-None-Match": '"something-else"'}, timeout=5)
    assert other.status_code == 200


def test_changing_a_page_changes_etag_and_last_modified(site) -> None:
    app, pages, url = site
    first = requests.get(url, timeout=5)
    app.set_page("/menu", DEMO_MENU_HTML.replace("비빔밥", "냉면"))
    second = requests.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert second.status_code == 200 and "냉면" in second.text
    assert second.headers["ETag"] != first.headers["ETag"]
    # Moves even within the same second, so If-Modified-Since alone sees the change too.
    assert parsedate_to_datetime(second.headers["Last-Modified"]) > parsedate_to_datetime(
        first.headers["Last-Modified"]
    )
    by_date = requests.get(url, headers={"If-Modified-Since": first.headers["Last-Modified"]}, timeout=5)
    assert by_date.status_code == 200

    pages["/menu"] = "<p>휴무</p>"  # the dict is read live, too
    third = requests.get(url, headers={"If-None-Match": second.headers["ETag"]}, timeout=5)
    assert third.status_code == 200 and third.text == "<p>휴무</p>"


def test_unknown_page_is_404(site) -> None:
    _, _, url = site
    assert requests.get(url + "-nope", timeout=5).status_code == 404


def test_demo_menu_lists_4_to_5_items() -> None:
    menu = re.search(r'<ul class="menu">(.*?)</ul>', DEMO_MENU_HTML, re.S)
    assert menu and 4 <= len(re.findall(r"<li>[^<]+</li>", menu.group(1))) <= 5


def test_serve_url_context_manager_and_idempotent_close() -> None:
    with serve(create_web_app({"/": "<p>hi</p>"})) as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert requests.get(server.url + "/", timeout=5).text == "<p>hi</p>"
    server.close()  # second close: no error
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url + "/", timeout=2)
