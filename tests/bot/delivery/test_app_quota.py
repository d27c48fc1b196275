"""Kakao's 30,000 messages a day per app, planned over config.toml's jobs and every merchant's: the operator
hears of it before a slot would run past it, and the problem closes once the plan fits again."""

from __future__ import annotations

from bot.config.model import JobConfig
from bot.config.plan import app_quota_warning
from bot.delivery.app_quota import KEY, check_app_quota
from bot.delivery.problems import open_problems
from bot.kakao.recipients import Recipient

from webhook_helpers import SHOP

TWENTY = tuple(Recipient("uuid", f"friend-{n:04d}") for n in range(19)) + (Recipient("me"),)


def digest(name: str, times: int, recipients: tuple[Recipient, ...] = TWENTY) -> JobConfig:
    return JobConfig(name=name, kind="shopify-orders", at=tuple(f"0 {hour} * * *" for hour in range(times)),
                     to=recipients, sender=name)


def test_the_plan_counts_every_scheduled_message_of_every_shop(make_app):
    config = make_app().config
    fits = [digest(f"shop-{n}", 6) for n in range(250)]  # 250 shops × 6 digests × 20 recipients = 30,000
    assert app_quota_warning(fits, config) is None
    over = app_quota_warning([*fits, digest("one-more", 1, (Recipient("me"),))], config)
    assert over is not None and "30,001" in over and "30,000" in over
    alerts = [JobConfig(name="alert", kind="shopify-order-alert", at=(), to=TWENTY, sender="x")] * 5000
    assert app_quota_warning(alerts, config) is None  # alerts come from orders: not planned


def test_the_operator_hears_of_it_once_and_it_closes_when_the_plan_fits(make_bot, monkeypatch):
    bot = make_bot()
    monkeypatch.setattr("bot.config.plan.APP_DAILY", 2)  # three recipients at one slot: over a 2-message app
    bot.merchant_settings.save("default", SHOP, {"recipients": ["me", "uuid:friend-0001", "uuid:friend-0002"],
                                                 "digest": {"at": ["08:00"]}, "new_orders": None},
                               expected_version=0)
    bot.merchant_jobs.refresh()
    assert check_app_quota(bot) is not None
    assert [problem.key for problem in open_problems(bot.db)] == [KEY]
    bot.merchant_settings.delete("default", SHOP)
    bot.merchant_jobs.refresh()
    assert check_app_quota(bot) is None
    assert open_problems(bot.db) == []
