"""`preview`: alert jobs rendered with made-up events of their kind, per audience; nothing sent or recorded."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from bot.app import App
from bot.cli.main import cli
from bot.store.models import Delivery

SHOP = "my-store.myshopify.com"

ALERT_JOBS = f"""
[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{SHOP}"
to = ["me", "friend:김민지"]

[[jobs]]
name = "refunds"
kind = "shopify-refund-alert"
shop = "{SHOP}"
events = ["refund"]
to = ["me"]

[[jobs]]
name = "stock"
kind = "shopify-stock-alert"
shop = "{SHOP}"
threshold = 3
to = ["me"]

[[jobs]]
name = "risky"
kind = "shopify-risk-alert"
shop = "{SHOP}"
to = ["me"]

[[jobs]]
name = "late"
kind = "shopify-unfulfilled-alert"
shop = "{SHOP}"
hours = 24
to = ["me"]
"""


@pytest.fixture
def run_cli(secrets) -> Any:  # noqa: ANN001
    env = {name: secrets.get(name) for name in ("BOT_SECRET_KEY", "KAKAO_REST_API_KEY", "KAKAO_CLIENT_SECRET")}
    env.update({"BOT_DATABASE_URL": None, "BOT_CONFIG": None, "CREDENTIALS_DIRECTORY": None})

    def run(app: App, *args: str) -> Result:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            return CliRunner().invoke(cli, ["--config", str(app.config.path), "preview", *args], env=env,
                                      catch_exceptions=False)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)

    return run


def _deliveries(app: App) -> int:
    with app.db.session() as session:
        return session.scalar(select(func.count()).select_from(Delivery))


def test_every_alert_kind_previews_a_made_up_event_per_recipient(make_app, run_cli, sandbox):  # noqa: ANN001
    app = make_app(ALERT_JOBS)
    result = run_cli(app)
    assert result.exit_code == 0, result.output
    out = result.output
    # The new-order alert: one rendering per recipient, each under its label.
    new_order = out.split("== new-orders")[1].split("== refunds")[0]
    assert "-- to me\n🛒 새 주문 #1024\n₩89,000 · 3개" in new_order
    assert "-- to friend:김민지\n🛒 새 주문 #1024" in new_order
    # Only the events the job alerts: refunds without cancellations.
    assert "a made-up event: 환불" in out and "주문 취소" not in out
    assert "↩️ 환불 #1024\n₩24,000 환불" in out
    # Stock: below the job's own threshold, and out of stock.
    assert "남은 재고 2개 (기준 3개 이하)" in out and "🚫 품절" in out
    assert "취소 권장" in out
    assert "⏰ 미발송 26시간째 #1024" in out
    # Nothing went to Kakao, nothing was recorded.
    assert sandbox.received("me") == []
    assert _deliveries(app) == 0


def test_named_jobs_only_and_unknown_names_refused(make_app, run_cli):  # noqa: ANN001
    app = make_app(ALERT_JOBS)
    only = run_cli(app, "stock")
    assert only.exit_code == 0
    assert "== stock" in only.output and "== new-orders" not in only.output

    unknown = run_cli(app, "nope")
    assert unknown.exit_code == 2
    assert "no job named nope" in unknown.output


def test_a_custom_template_previews_with_the_sample_values(make_app, run_cli):  # noqa: ANN001
    app = make_app(f"""
[[jobs]]
name = "big-orders"
kind = "shopify-order-alert"
shop = "{SHOP}"
template = "큰 주문 {{{{ name }}}}: {{{{ total|won(currency) }}}} / {{{{ items|length }}}}종"
to = ["me"]
""")
    result = run_cli(app)
    assert result.exit_code == 0, result.output
    assert "큰 주문 #1024: ₩89,000 / 2종" in result.output
