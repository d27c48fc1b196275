"""The Kakao stand-in's message image upload (`POST /v2/api/talk/message/image/upload`), and the
uploaded images served back at the URLs it returned (as Kakao's CDN would).

Kakao's shapes and limits: multipart field `file`, a bearer token (a bad one: 401, -401, checked by
the stand-in's own token check), at most 5 MB (-602), a missing file (-2), a file that is not a
JPEG, PNG or GIF (-911). The answer is `{"infos": {"original": {url, length, content_type, width,
height}}}`. Registered by bot.sandbox.kakao; tests read `images.uploads` and script faults there.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Callable

from flask import Response, request

UPLOAD_PATH = "/v2/api/talk/message/image/upload"
SERVE_PATH = "/dn/<key>/<name>"
MAX_BYTES = 5 * 1024 * 1024
JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Upload:
    key: str
    name: str
    data: bytes
    content_type: str
    width: int
    height: int


def image_kind(data: bytes) -> tuple[str, int, int] | None:
    """(content type, width, height) of a PNG, GIF or JPEG, read from its header; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        return "image/png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return "image/gif", int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    at = 2
    while at + 9 < len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            return "image/jpeg", int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + length
    return None


class KakaoImages:
    """The uploaded images of one stand-in. `check_token()` raises the stand-in's -401 answer."""

    def __init__(self, check_token: Callable[[], Any]):
        self.check_token = check_token
        self.uploads: list[Upload] = []  # oldest first
        self._by_key: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        return [(UPLOAD_PATH, "POST", self.upload), (SERVE_PATH, "GET", self.serve)]

    def upload(self) -> Response:
        self.check_token()
        file = request.files.get("file")
        if file is None:
            return _error(400, -2, "file is required (multipart/form-data, field 'file')")
        data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return _error(400, -602, f"image size exceeds the limit ({MAX_BYTES} bytes)")
        kind = image_kind(data)
        if kind is None:
            return _error(400, -911, "unsupported image format (jpg, png, gif)")
        content_type, width, height = kind
        name = "img." + content_type.rpartition("/")[2].replace("jpeg", "jpg")
        upload = Upload(secrets.token_hex(8), name, data, content_type, width, height)
        with self._lock:
            self.uploads.append(upload)
            self._by_key[upload.key] = upload
        url = f"{request.host_url.rstrip('/')}/dn/{upload.key}/{name}"
        original = {"url": url, "length": len(data), "content_type": content_type, "width": width, "height": height}
        return Response(json.dumps({"infos": {"original": original}}), status=200, content_type=JSON_TYPE)

    def serve(self, key: str, name: str) -> Response:
        with self._lock:
            upload = self._by_key.get(key)
        if upload is None or upload.name != name:
            return Response(b"not found", status=404, content_type="text/plain")
        return Response(upload.data, status=200, content_type=upload.content_type)


def _error(status: int, code: int, msg: str) -> Response:
    return Response(json.dumps({"msg": msg, "code": code}), status=status, content_type=JSON_TYPE)
