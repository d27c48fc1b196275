"""Orders unfulfilled longer than N hours: found on a schedule, alerted once per order, ever."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Callable

import pytest

from bot.app import App
from bot.delivery.alerts import AlertSender
from bot.sandbox.kakao import KakaoSandbox
from bot.sandbox.shopify import ShopifySandbox
from bot.service.run import register_unfulfilled_checks
from bot.service.scheduler import BotScheduler
from bot.webhooks.unfulfilled import UnfulfilledCheck

from webhook_helpers import ALERT_JOB, SHOP

if TYPE_CHECKING:
    from conftest import FakeClock

UNFULFILLED_JOB = f"""
[[jobs]]
name = "late"
kind = "shopify-unfulfilled-alert"
shop = "{SHOP}"
hours = 48
to = ["me"]
"""


@pytest.fixture
def bot(make_bot: Callable[..., App]) -> App:
    return make_bot(UNFULFILLED_JOB)


def first_lines(sandbox: KakaoSandbox) -> list[str]:
    return [template["text"].splitlines()[0] for template in sandbox.received("me")]


def test_only_open_unfulfilled_real_orders_older_than_the_hours_are_alerted_once(
        bot: App, shopify: ShopifySandbox, clock: FakeClock, sandbox: KakaoSandbox) -> None:
    now = clock()
    late = shopify.add_order(SHOP, createdAt=now - timedelta(hours=50), total=30000)
    shopify.add_order(SHOP, createdAt=now - timedelta(hours=10))  # not late yet
    shopify.add_order(SHOP, createdAt=now - timedelta(hours=60), displayFulfillmentStatus="FULFILLED")
    shopify.add_order(SHOP, createdAt=now - timedelta(hours=60), cancelledAt=now - timedelta(hours=59))
    shopify.add_order(SHOP, createdAt=now - timedelta(hours=60), test=True)
    shopify.add_order(SHOP, createdAt=now - timedelta(days=10))  # older than max_age_days (7): history
    check = UnfulfilledCheck(bot)
    assert check.run_once() == 1
    assert first_lines(sandbox) == [f"⏰ 미발송 50시간째 {late['name']}"]
    clock.advance(minutes=30)
    assert check.run_once() == 0  # the next pass
    assert UnfulfilledCheck(bot).run_once() == 0  # after a restart
    assert len(sandbox.received("me")) == 1


def test_an_order_becomes_due_at_a_later_pass(bot: App, shopify: ShopifySandbox, clock: FakeClock,
                                              sandbox: KakaoSandbox) -> None:
    order = shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=47, minutes=45))
    check = UnfulfilledCheck(bot)
    assert check.run_once() == 0
    clock.advance(minutes=30)
    assert check.run_once() == 1
    assert first_lines(sandbox) == [f"⏰ 미발송 48시간째 {order['name']}"]


def test_a_failing_shop_is_logged_and_covered_by_the_next_pass(bot: App, shopify: ShopifySandbox, clock: FakeClock,
                                                               sandbox: KakaoSandbox, caplog) -> None:  # noqa: ANN001
    shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=50))
    shopify.fail_next("graphql.json", 503, {"errors": "unavailable"}, times=20)
    check = UnfulfilledCheck(bot)
    with caplog.at_level(logging.ERROR):
        assert check.run_once() == 0
    assert "covered by the next pass" in caplog.text
    shopify.clear_faults()
    assert check.run_once() == 1
    assert len(sandbox.received("me")) == 1


def test_quiet_hours_hold_the_alert(make_bot: Callable[..., App], shopify: ShopifySandbox, clock: FakeClock,
                                    sandbox: KakaoSandbox) -> None:
    app = make_bot(UNFULFILLED_JOB + 'quiet = "08:00-10:00"\n')  # 09:00 in Seoul by the fake clock
    order = shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=50))
    check = UnfulfilledCheck(app)
    check.run_once()
    check.run_once()
    assert sandbox.received("me") == []
    (job,) = app.config.jobs
    (held,) = AlertSender(app).held(job)
    assert held[0] == f"unfulfilled:{order['id']}"


def test_the_service_schedules_the_check_only_when_a_job_needs_it(make_bot: Callable[..., App]) -> None:
    with_job = make_bot(UNFULFILLED_JOB)
    assert register_unfulfilled_checks(with_job, BotScheduler(with_job)) is not None
    without = make_bot(ALERT_JOB)
    assert register_unfulfilled_checks(without, BotScheduler(without)) is None


def test_two_instances_on_postgresql_alert_a_late_order_once(make_bot: Callable[..., App], postgres_url: str,
                                                             shopify: ShopifySandbox, clock: FakeClock,
                                                             sandbox: KakaoSandbox) -> None:
    first = make_bot(UNFULFILLED_JOB, db_url=postgres_url)
    second = make_bot(UNFULFILLED_JOB, db_url=postgres_url, login=False)
    shopify.add_order(SHOP, createdAt=clock() - timedelta(hours=50))
    sent: list[int] = []
    threads = [threading.Thread(target=lambda app=app: sent.append(UnfulfilledCheck(app).run_once()))
               for app in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(sent) == [0, 1]
    assert len(sandbox.received("me")) == 1
