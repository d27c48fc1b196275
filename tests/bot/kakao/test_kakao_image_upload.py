"""The Kakao client's image upload (`KakaoApi.upload_image`) against recorded answer shapes: the
multipart request, the answer checked, Kakao's errors mapped, retries only for what can pass."""

from __future__ import annotations

import pytest
import responses

from bot.kakao.client import MAX_IMAGE_BYTES, KakaoApi, KakaoHttp, UploadedImage
from bot.kakao.errors import KakaoBadRequest, KakaoError, KakaoImageRejected, KakaoUnavailable
from bot.util.http import new_session
from bot.util.retry import RetryPolicy

from upstream_fixtures import load_fixture

BASE = "https://kapi.test.invalid"
UPLOAD_URL = f"{BASE}/v2/api/talk/message/image/upload"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Tokens:
    def __init__(self) -> None:
        self.current, self.renewed = "access-1", 0

    def access_token(self) -> str:
        return self.current

    def renew(self, rejected: str) -> str:
        self.renewed += 1
        self.current = f"access-{self.renewed + 1}"
        return self.current


def make_api(tokens: Tokens | None = None) -> KakaoApi:
    http = KakaoHttp(new_session(), timeout=5, retry=RetryPolicy(attempts=3, base_delay=0, sleep=lambda _s: None))
    return KakaoApi(http, api_url=BASE, tokens=tokens or Tokens())


@responses.activate
def test_upload_sends_the_file_as_multipart_with_the_bearer_token():
    responses.post(UPLOAD_URL, json=load_fixture("kakao/image_upload_ok.json"))

    image = make_api().upload_image(PNG, filename="digest.png")

    assert image == UploadedImage("http://k.kakaocdn.net/dn/bZ8S4D/btsL2cXYZ12/abcdEFGHijklMNOP/img.png",
                                  800, 400, 40690, "image/png")
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer access-1"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="digest.png"' in request.body and PNG in request.body


@responses.activate
def test_an_expired_token_is_renewed_once_and_the_upload_repeated():
    responses.post(UPLOAD_URL, status=401, json={"code": -401, "msg": "this access token is already expired"})
    responses.post(UPLOAD_URL, json=load_fixture("kakao/image_upload_ok.json"))
    tokens = Tokens()

    make_api(tokens).upload_image(PNG)

    assert tokens.renewed == 1
    assert responses.calls[1].request.headers["Authorization"] == "Bearer access-2"


@pytest.mark.parametrize("status, body, error", [
    (400, load_fixture("kakao/error_-602.json"), KakaoImageRejected),
    (400, {"code": -911, "msg": "unsupported image format"}, KakaoImageRejected),
    (400, {"code": -2, "msg": "file is required"}, KakaoBadRequest),
])
@responses.activate
def test_kakao_refusals_are_named_and_not_retried(status, body, error):
    responses.post(UPLOAD_URL, status=status, json=body)

    with pytest.raises(error) as info:
        make_api().upload_image(PNG)

    assert info.value.code == body["code"] and not info.value.retryable
    assert len(responses.calls) == 1


@responses.activate
def test_a_5xx_is_retried_then_reported_as_unavailable():
    responses.post(UPLOAD_URL, status=503, json={"code": -9798, "msg": "service is under maintenance"})

    with pytest.raises(KakaoUnavailable):
        make_api().upload_image(PNG)

    assert len(responses.calls) == 3  # nothing is delivered by an upload: retrying is safe


@pytest.mark.parametrize("body, why", [
    ({}, "infos.original"),
    ({"infos": {"original": "x"}}, "infos.original"),
    ({"infos": {"original": {"url": "/relative.png", "width": 800, "height": 400}}}, "http(s)"),
    ({"infos": {"original": {"url": "javascript:alert(1)", "width": 800, "height": 400}}}, "http(s)"),
    ({"infos": {"original": {"url": "https://k.kakaocdn.net/a.png", "width": "800", "height": 400}}}, "width"),
    ({"infos": {"original": {"url": "https://k.kakaocdn.net/a.png", "width": 800, "height": True}}}, "width"),
])
@responses.activate
def test_an_answer_not_shaped_as_kakaos_is_refused(body, why):
    responses.post(UPLOAD_URL, json=body)

    with pytest.raises(KakaoError, match=r"image upload answer") as info:
        make_api().upload_image(PNG)

    assert why in str(info.value) and not info.value.retryable


@responses.activate
def test_an_image_over_5_mb_is_refused_before_any_request():
    with pytest.raises(KakaoImageRejected, match="-602"):
        make_api().upload_image(PNG + b"\x00" * MAX_IMAGE_BYTES)
    with pytest.raises(ValueError):
        make_api().upload_image(b"")
    assert len(responses.calls) == 0
