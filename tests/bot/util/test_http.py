"""bot.util.http: the environment's proxies and CA bundle honoured, read once per host, ~/.netrc never."""

from __future__ import annotations

import pytest
import requests.utils
import responses

from bot.util import http
from bot.util.http import USER_AGENT, new_session


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")


def _settings(session, url: str) -> dict:  # noqa: ANN001
    return session.merge_environment_settings(url, {}, None, None, None)


def test_environment_proxies_and_ca_bundle_are_honoured(proxy_env: None) -> None:
    session = new_session()
    kakao = _settings(session, "https://kapi.kakao.com/v2/api/talk/memo/default/send")
    assert kakao["proxies"]["https"] == "http://proxy.internal:3128"
    assert kakao["verify"] == "/etc/ssl/company-ca.pem"
    assert "https" not in _settings(session, "http://127.0.0.1:9001/oauth/token")["proxies"]  # NO_PROXY


def test_explicit_settings_win_over_the_environment(proxy_env: None) -> None:
    settings = new_session().merge_environment_settings("https://kapi.kakao.com/x", {"https": "http://other:1"},
                                                        None, False, None)
    assert settings["proxies"]["https"] == "http://other:1" and settings["verify"] is False


def test_the_environment_is_read_once_per_host(proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(http, "get_environ_proxies", lambda url, no_proxy=None: reads.append(url) or real(url, no_proxy))
    session = new_session()
    for _ in range(3):
        _settings(session, "https://kapi.kakao.com/v1/api/talk/friends")
    _settings(session, "https://kauth.kakao.com/oauth/token")
    assert reads == ["https://kapi.kakao.com/v1/api/talk/friends", "https://kauth.kakao.com/oauth/token"]


@responses.activate
def test_netrc_credentials_never_replace_the_clients_header(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine kapi.kakao.com login someone password leaked\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    responses.get("https://kapi.kakao.com/v1/user/access_token_info", json={"id": 1})
    new_session().get("https://kapi.kakao.com/v1/user/access_token_info", headers={"Authorization": "Bearer abc"})
    sent = responses.calls[0].request.headers
    assert sent["Authorization"] == "Bearer abc" and sent["User-Agent"] == USER_AGENT
