"""The scheduler runs each embedded app merchant's jobs next to config.toml's and follows their settings while
running: a saved change is scheduled at the next look at the settings clock, on every instance sharing the
database; a removed job stops; the digest goes out through the merchant's own Kakao login, exactly once."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.app import App
from bot.sandbox.kakao import KakaoSandbox
from bot.service.scheduler import BotScheduler
from bot.store.merchant_settings import merchant_account

from webhook_helpers import SHOP

SEOUL = ZoneInfo("Asia/Seoul")
ACCOUNT = merchant_account("default", SHOP)
DIGEST, ALERT = f"{ACCOUNT}:digest", f"{ACCOUNT}:new-orders"


def save(app: App, document: dict, version: int) -> None:
    app.merchant_settings.save("default", SHOP, document, expected_version=version)


def scheduled(scheduler: BotScheduler) -> set[str]:
    return {job.id for job in scheduler._scheduler.get_jobs() if job.id.startswith("job:")}


def test_a_saved_change_is_scheduled_changed_and_stopped_while_running(make_bot, clock):
    bot = make_bot()
    scheduler = BotScheduler(bot, clock=clock).start()
    try:
        assert scheduled(scheduler) == set()  # the bot's alert job has no quiet hours: nothing to fire
        save(bot, {"recipients": ["me"], "digest": {"at": ["08:00"]}, "new_orders": {"quiet": "22:00-07:00"}}, 0)
        scheduler.sync_merchant_jobs()
        assert scheduled(scheduler) == {f"job:{DIGEST}", f"job:{ALERT}"}
        day = datetime(2026, 11, 23, tzinfo=SEOUL)
        assert scheduler.due(day, day.replace(hour=23)) == [(ALERT, day.replace(hour=7)), (DIGEST, day.replace(hour=8))]

        save(bot, {"recipients": ["me"], "digest": {"at": ["18:30"]}, "new_orders": None}, 1)
        scheduler.sync_merchant_jobs()
        assert scheduled(scheduler) == {f"job:{DIGEST}"}
        assert scheduler.due(day, day.replace(hour=23)) == [(DIGEST, day.replace(hour=18, minute=30))]

        bot.merchant_settings.delete("default", SHOP)
        scheduler.sync_merchant_jobs()
        assert scheduled(scheduler) == set() and scheduler.due(day, day.replace(hour=23)) == []
    finally:
        scheduler.stop(10)


def test_every_instance_sharing_the_database_sees_the_change(make_bot, clock, write_config):
    first = make_bot()
    second = App(first.config, first.secrets, clock=clock)  # another instance: its own App on the same database
    schedulers = [BotScheduler(app, clock=clock).start() for app in (first, second)]
    try:
        save(first, {"recipients": ["me"], "digest": {"at": ["08:00"]}}, 0)
        for scheduler in schedulers:
            scheduler.sync_merchant_jobs()
            assert scheduled(scheduler) == {f"job:{DIGEST}"}
    finally:
        for scheduler in schedulers:
            scheduler.stop(10)
        second.close()


def test_the_merchants_digest_goes_out_through_their_own_login_once(make_bot, clock, logged_in,
                                                                   sandbox: KakaoSandbox):
    bot = make_bot()
    logged_in(bot, ACCOUNT)
    save(bot, {"recipients": ["me"], "digest": {"at": ["08:00"]}}, 0)
    scheduler = BotScheduler(bot, clock=clock)
    scheduler.sync_merchant_jobs()
    eight = datetime(2026, 11, 22, 8, tzinfo=SEOUL)
    report = scheduler.fire_at(DIGEST, eight, eight)
    assert [result.status for result in report.fanout.results] == ["sent"]
    again = scheduler.fire_at(DIGEST, eight, eight)
    assert [result.status for result in again.fanout.results] == ["already-sent"]
    (row,) = bot.deliveries.history(sender=ACCOUNT)
    assert (row.job, row.slot_key, row.status) == (DIGEST, eight.isoformat(), "sent")
