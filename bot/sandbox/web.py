"""A tiny web server of HTML pages, the stand-in for pages the bot scrapes (e.g. a menu).

Pages answer with a strong `ETag` and a `Last-Modified`, and 304 to a matching
`If-None-Match` or `If-Modified-Since`, so conditional fetching can be tested. Pages can be
changed while the server runs (`app.set_page(path, html)`, or by changing the dict passed
in); a changed page gets a new ETag and a later Last-Modified.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timezone

from flask import Flask, Response, request

DEMO_MENU_HTML = """<!doctype html>
<html lang="ko">
<head><meta charset="utf-8"><title>오늘의 점심 메뉴</title></head>
<body>
  <h1>오늘의 점심 메뉴</h1>
  <ul class="menu">
    <li>김치찌개 정식 9,000원</li>
    <li>제육볶음 덮밥 9,500원</li>
    <li>비빔밥 8,500원</li>
    <li>잔치국수 7,000원</li>
    <li>돈가스 10,000원</li>
  </ul>
  <p class="note">11:30–14:00 · 재료 소진 시 조기 마감</p>
</body>
</html>
"""


class PageApp(Flask):
    """A Flask app serving `pages` (path -> HTML), read live on every request."""

    def __init__(self, pages: dict[str, str]):
        super().__init__(__name__)
        self.pages = pages
        # path -> (etag, last-modified epoch seconds): Last-Modified moves only when the
        # content does, so repeated fetches of an unchanged page can get 304.
        self._versions: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self.add_url_rule("/", "page", self._page, defaults={"path": ""})
        self.add_url_rule("/<path:path>", "page", self._page)

    def set_page(self, path: str, html: str) -> None:
        self.pages[path] = html

    def _version(self, path: str, html: str) -> tuple[str, int]:
        etag = hashlib.sha256(html.encode()).hexdigest()[:32]
        with self._lock:
            old = self._versions.get(path)
            if old is None or old[0] != etag:
                # HTTP dates have whole seconds: a change within the same second must still
                # move Last-Modified, or If-Modified-Since would hide it.
                modified = int(time.time())
                if old is not None:
                    modified = max(modified, old[1] + 1)
                self._versions[path] = (etag, modified)
            return self._versions[path]

    def _page(self, path: str) -> Response:
        key = "/" + path
        html = self.pages.get(key)
        if html is None:
            return Response("not found\n", 404, content_type="text/plain; charset=utf-8")
        etag, modified = self._version(key, html)
        response = Response(html, content_type="text/html; charset=utf-8")
        response.set_etag(etag)  # strong: the bytes are exactly this page
        response.last_modified = datetime.fromtimestamp(modified, timezone.utc)
        response.cache_control.no_cache = True  # revalidate every time, like a daily menu
        return response.make_conditional(request)


def create_web_app(pages: dict[str, str]) -> Flask:
    """A Flask app (a `PageApp`) serving `pages`, e.g. {"/menu": DEMO_MENU_HTML}."""
    return PageApp(pages)
