"""The Kakao stand-in's image upload over real HTTP: Kakao's answer shape, its limits and errors, and the
image served back at the returned URL."""

from __future__ import annotations

import io
from typing import Iterator

import pytest
import requests
from PIL import Image

from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.kakao_images import MAX_BYTES, UPLOAD_PATH, image_kind
from bot.sandbox.server import RunningServer, serve

from upstream_fixtures import load_fixture, shape

REDIRECT = "http://localhost:8080/kakao/callback"


def picture(fmt: str, size: tuple[int, int] = (800, 400)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def served() -> Iterator[tuple[KakaoSandbox, RunningServer, str]]:
    sandbox = KakaoSandbox()
    with serve(sandbox.wsgi_app()) as server:
        token = requests.post(server.url + "/oauth/token", timeout=5, data={
            "grant_type": "authorization_code", "client_id": sandbox.rest_api_key,
            "client_secret": sandbox.client_secret, "redirect_uri": REDIRECT,
            "code": sandbox.issue_code(REDIRECT)}).json()["access_token"]
        yield sandbox, server, token


def upload(server: RunningServer, token: str | None, files: dict | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(server.url + UPLOAD_PATH, headers=headers, files=files, data={"x": "1"}, timeout=10)


@pytest.mark.parametrize("fmt, content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif")])
def test_upload_answers_kakaos_shape_and_serves_the_image_back(served, fmt, content_type):
    sandbox, server, token = served
    data = picture(fmt, (640, 320))

    answer = upload(server, token, {"file": ("chart", data, content_type)})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert shape(body) == shape(load_fixture("kakao/image_upload_ok.json"))
    original = body["infos"]["original"]
    assert (original["width"], original["height"], original["length"]) == (640, 320, len(data))
    assert original["content_type"] == content_type
    back = requests.get(original["url"], timeout=5)
    assert back.status_code == 200 and back.content == data
    assert back.headers["Content-Type"] == content_type
    assert len(sandbox.images.uploads) == 1


def test_a_bad_token_gets_401(served):
    _sandbox, server, _token = served
    for token in (None, "not-a-token"):
        answer = upload(server, token, {"file": ("chart.png", picture("PNG"), "image/png")})
        assert answer.status_code == 401 and answer.json()["code"] == -401


def test_a_missing_file_is_kakaos_bad_parameter(served):
    _sandbox, server, token = served
    answer = upload(server, token, None)
    assert answer.status_code == 400 and answer.json()["code"] == -2


def test_over_5_mb_is_refused_with_602(served):
    sandbox, server, token = served
    big = picture("PNG") + b"\x00" * MAX_BYTES
    answer = upload(server, token, {"file": ("chart.png", big, "image/png")})
    assert answer.status_code == 400 and answer.json()["code"] == -602
    assert sandbox.images.uploads == []


def test_a_file_that_is_no_image_is_refused_with_911(served):
    _sandbox, server, token = served
    answer = upload(server, token, {"file": ("chart.png", b"%PDF-1.4 not an image", "image/png")})
    assert answer.status_code == 400 and answer.json()["code"] == -911


def test_an_unknown_image_url_is_404(served):
    _sandbox, server, _token = served
    assert requests.get(server.url + "/dn/0000/img.png", timeout=5).status_code == 404


def test_image_kind_reads_sizes_from_headers():
    assert image_kind(picture("PNG", (800, 400))) == ("image/png", 800, 400)
    assert image_kind(picture("JPEG", (801, 399))) == ("image/jpeg", 801, 399)
    assert image_kind(picture("GIF", (20, 10))) == ("image/gif", 20, 10)
    assert image_kind(b"\xff\xd8\xff") is None
    assert image_kind(b"") is None
