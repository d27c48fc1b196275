"""/healthz tells strangers the status and counts only; the details (shops, Kakao accounts, problem
texts, the database host) go to loopback callers without proxy headers or to BOT_HEALTH_TOKEN."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
from sqlalchemy import text

from bot.app import App
from bot.config.secrets import Secrets
from bot.delivery.problems import ProblemReporter
from bot.service.run import run_service
from bot.web.health_access import bearer_matches
from bot.web.server import create_app

from webhook_helpers import CLIENT_SECRET, REST_KEY

SHOP = "secret-store.myshopify.com"
TOKEN = "health-token-0123456789abcdef"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}


@pytest.fixture
def app(make_app, logged_in, secret_key) -> App:
    secrets = Secrets({"BOT_SECRET_KEY": secret_key, "KAKAO_REST_API_KEY": REST_KEY,
                       "KAKAO_CLIENT_SECRET": CLIENT_SECRET, "BOT_HEALTH_TOKEN": TOKEN})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_app(f'[server]\nlisten = "127.0.0.1:{port}"\n\n'
                   '[[jobs]]\nname = "menu"\nkind = "scrape"\nurl = "https://example.com/m"\nselect = "li"\n'
                   'at = ["noon"]\nto = ["me"]\nfrom = "owner-kim"\n', with_secrets=secrets)
    logged_in(app, "staff-lee")
    app.shopify_tokens.store_legacy("default", SHOP, "shpat_accesstest0123456789", "read_orders")
    ProblemReporter(app).check_all()  # "no Kakao login named 'owner-kim' is stored": a problem text
    return app


def get(app: App, **kwargs):  # noqa: ANN003, ANN201 - Flask test client arguments and response
    return create_app(app).test_client().get("/healthz", **kwargs)


def assert_no_details(answer) -> None:  # noqa: ANN001
    body = answer.get_data(as_text=True)
    for detail in (SHOP, "staff-lee", "owner-kim", "kakao login", "version"):
        assert detail not in body, detail
    assert set(answer.json) == {"status", "db", "scheduler", "counts", "details"}


def test_a_stranger_gets_status_and_counts_only(app):
    answer = get(app, environ_base=OUTSIDE)
    assert answer.status_code == 503  # the same status code as the full answer
    assert answer.json["status"] == "needs_attention"
    assert answer.json["counts"] == {"kakao_logins": 1, "kakao_logins_needing_login": 0, "shopify_installs": 1,
                                     "shopify_installs_not_active": 0, "merchants": 0, "merchants_kakao_not_connected": 0,
                                     "problems": 1, "problems_needing_person": 1,
                                     "webhooks_pending": 0, "webhooks_unprocessed": 0}
    assert "BOT_HEALTH_TOKEN" in answer.json["details"]
    assert_no_details(answer)


def test_loopback_gets_the_details(app):
    answer = get(app)  # the test client's peer is 127.0.0.1
    assert answer.json["shopify"][0]["shop"] == SHOP
    assert answer.json["kakao"][0]["account"] == "staff-lee"
    assert "owner-kim" in answer.json["problems"][0]["summary"]
    assert get(app, environ_base={"REMOTE_ADDR": "::1"}).json["kakao"][0]["account"] == "staff-lee"


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_loopback_behind_a_proxy_counts_as_remote(app, header):
    assert_no_details(get(app, headers={header: "203.0.113.7"}))


def test_the_bearer_of_the_health_token_gets_the_details_from_anywhere(app):
    answer = get(app, environ_base=OUTSIDE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.json["shopify"][0]["shop"] == SHOP
    answer = get(app, headers={"Authorization": f"bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"})
    assert answer.json["kakao"][0]["account"] == "staff-lee"


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", "Bearer ",
                                           "Bearer \u00e9\u00e8\u00ff" * 3, TOKEN, "Bearer \u4e2d\u6587"])
def test_a_wrong_or_odd_token_gets_counts_only_and_never_a_500(app, authorization):
    answer = get(app, environ_base=OUTSIDE, headers={"Authorization": authorization})
    assert answer.status_code == 503
    assert_no_details(answer)


def test_no_token_configured_means_no_bearer_is_accepted(make_app):
    app = make_app()
    assert set(get(app, environ_base=OUTSIDE, headers={"Authorization": "Bearer "}).json) >= {"counts"}
    assert not bearer_matches("Bearer ", "")


def test_a_database_error_does_not_show_its_text_to_a_stranger(app):
    with app.db.session() as session:
        session.execute(text("DROP TABLE kakao_logins"))
    answer = get(app, environ_base=OUTSIDE)
    assert answer.status_code == 503 and answer.json["db"] == "error"
    assert answer.json["counts"] is None  # unknown, not zero
    assert "no such table" not in answer.get_data(as_text=True)
    assert "no such table: kakao_logins" in get(app).json["db"]


def test_the_real_server_judges_the_peer_address_it_sees(app):
    stop, ready, outcome = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=lambda: outcome.update(code=run_service(app, ready=ready.set, stop_event=stop)),
                              daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        url = f"http://127.0.0.1:{app.config.server.port}/healthz"
        local = requests.get(url, timeout=10)
        proxied = requests.get(url, headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10)
    finally:
        stop.set()
        thread.join(30)
    assert outcome == {"code": 0}
    assert local.json()["shopify"][0]["shop"] == SHOP
    assert SHOP not in proxied.text and proxied.json()["counts"]["shopify_installs"] == 1


def test_the_health_token_is_masked_like_any_other_secret(app):
    get(app, environ_base=OUTSIDE)
    assert TOKEN not in app.redactor.scrub(f"Authorization: {TOKEN}")
