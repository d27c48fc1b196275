"""Quiet hours of order alerts: the window (with its wrap over midnight), alerts held inside it and
summarised in ONE message when it ends (exactly once), alerts outside it sent at once."""

from __future__ import annotations

from datetime import datetime, time, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import App, load_config
from bot.config.model import ConfigError
from bot.cli.preview import preview
from bot.delivery.alert_summary import quiet_summary_text
from bot.delivery.alerts import AlertSender, quiet_window_end
from bot.kakao.templates import TEXT_LIMIT
from bot.service.scheduler import BotScheduler, CatchUp
from bot.store.models import Delivery
from bot.util.quiet_hours import QuietWindow, parse_quiet
from jobs.shopify_order_alert import alert_outcome

UTC = timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
SHOP = "my-store.myshopify.com"


def kst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SEOUL)


# -- the window ------------------------------------------------------------------------------------


def test_window_across_midnight():
    quiet = parse_quiet("22:00-07:00")
    assert quiet == QuietWindow(time(22), time(7)) and quiet.wraps and str(quiet) == "22:00-07:00"
    inside = [time(22), time(23, 59), time(0), time(3, 30), time(6, 59)]
    outside = [time(7), time(7, 1), time(12), time(21, 59)]
    assert all(quiet.contains(moment) for moment in inside)
    assert not any(quiet.contains(moment) for moment in outside)
    assert quiet.contains(kst(22, 23, 30)) and not quiet.contains(kst(22, 8))


def test_window_within_a_day():
    quiet = parse_quiet(" 13:00 - 14:30 ")
    assert not quiet.wraps
    assert quiet.contains(time(13)) and quiet.contains(time(14, 29))
    assert not quiet.contains(time(14, 30)) and not quiet.contains(time(12, 59)) and not quiet.contains(time(23))


@pytest.mark.parametrize("text", ["22:00", "22-07", "24:00-07:00", "22:00-7:00", "22:00–07:00", "", "22:60-07:00"])
def test_bad_windows_are_refused(text):
    with pytest.raises(ValueError) as info:
        parse_quiet(text)
    assert "HH:MM-HH:MM" in str(info.value)


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError) as info:
        parse_quiet("07:00-07:00")
    assert "same time" in str(info.value)


def alert_job_toml(quiet: str | None = '"22:00-07:00"', to: str = '["me"]') -> str:
    return f"""
[[jobs]]
name = "new-orders"
kind = "shopify-order-alert"
shop = "{SHOP}"
to = {to}
""" + (f"quiet = {quiet}\n" if quiet is not None else "")


def test_config_takes_quiet_and_names_the_key_when_wrong(write_config):
    config = load_config(write_config(alert_job_toml()))
    assert config.job("new-orders").params.quiet == QuietWindow(time(22), time(7))
    assert load_config(write_config(alert_job_toml(None))).job("new-orders").params.quiet is None
    for bad, words in [('"22:00-25:00"', "HH:MM-HH:MM"), ("2200", "must be a string"), ('"09:00-09:00"', "same time")]:
        with pytest.raises(ConfigError) as info:
            load_config(write_config(alert_job_toml(bad)))
        assert info.value.key == "jobs[new-orders].quiet" and words in info.value.reason


def test_quiet_is_only_for_alerts_digests_are_not_affected(write_config):
    path = write_config("""
        [[jobs]]
        name = "menu"
        kind = "scrape"
        url = "https://example.com/menu"
        select = "li"
        at = ["noon"]
        to = ["me"]
        quiet = "22:00-07:00"
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "jobs[0].quiet" and "unknown key" in info.value.reason


def test_window_end_is_the_next_end_after_now():
    quiet = parse_quiet("22:00-07:00")
    assert quiet_window_end(quiet, kst(22, 23), SEOUL) == kst(23, 7)
    assert quiet_window_end(quiet, kst(23, 2), SEOUL) == kst(23, 7)
    assert quiet_window_end(parse_quiet("13:00-14:00"), kst(23, 13, 30), SEOUL) == kst(23, 14)


# -- holding and summarising, against the Kakao stand-in ------------------------------------------------


def order(number: int, amount: str = "33000.0") -> dict[str, Any]:
    return {"id": f"gid://shopify/Order/61000000{number}", "name": f"#{number}", "createdAt": "2026-11-22T14:00:00Z",
            "cancelledAt": None, "displayFinancialStatus": "PAID",
            "totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": "KRW"}},
            "lineItems": {"nodes": [{"name": "드립백 10개입", "sku": "DRIP-10", "quantity": 2}]}}


@pytest.fixture
def alert_app(make_app, logged_in, sandbox) -> Callable[..., App]:  # noqa: ANN001
    sandbox.add_friend("친구01", uuid="uuid-friend-01")

    def make(to: str = '["me"]') -> App:
        app = make_app(alert_job_toml(to=to))
        logged_in(app)
        return app
    return make


def raise_alert(app: App, number: int, amount: str = "33000.0", sender: AlertSender | None = None) -> Any:
    """What the webhook worker and the reconciliation do for a new order."""
    job = app.config.job("new-orders")
    outcome = alert_outcome(job, order(number, amount), timezone=app.config.timezone)
    return (sender or AlertSender(app)).deliver(job, f"order:gid://shopify/Order/61000000{number}", outcome)


def texts(sandbox, key: str = "me") -> list[str]:  # noqa: ANN001
    """What each message reads as (a list message in its plain-text preview)."""
    return [preview(message) for message in sandbox.received(key)]


def rows(app: App) -> list[Delivery]:
    with app.db.session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.job == "new-orders").order_by(Delivery.id)))


def test_outside_the_window_an_alert_is_sent_at_once(alert_app, clock, sandbox):
    app = alert_app()
    clock.now = kst(22, 12).astimezone(UTC)
    report = raise_alert(app, 1001)
    assert [result.status for result in report.results] == ["sent"]
    (text,) = texts(sandbox)
    assert "새 주문 #1001" in text


def dead_login(sandbox) -> None:  # noqa: ANN001
    sandbox.revoke_refresh_tokens()
    sandbox.expire_access_tokens()


def failed_by_name(app: App) -> list[tuple[str, str, str, bool]]:
    return [(row.recipient, row.label, row.status, "kakao login" in (row.reason or "")) for row in rows(app)]


def test_an_alert_with_a_dead_login_fails_every_recipient_by_name(alert_app, clock, sandbox):
    app = alert_app('["me", "friend:친구01"]')
    clock.now = kst(22, 12).astimezone(UTC)
    dead_login(sandbox)
    report = raise_alert(app, 1001)
    assert [result.status for result in report.results] == ["failed", "failed"]
    assert failed_by_name(app) == [("me", "me", "failed", True), ("friend:친구01", "친구01", "failed", True)]
    assert texts(sandbox) == []


def test_a_summary_with_a_dead_login_fails_every_recipient_by_name(alert_app, clock, sandbox):
    app = alert_app('["me", "friend:친구01"]')
    clock.now = kst(22, 23).astimezone(UTC)
    raise_alert(app, 1001)  # held: nothing asked of Kakao yet
    dead_login(sandbox)
    clock.now = kst(23, 7).astimezone(UTC)
    report = BotScheduler(app).fire_at("new-orders", kst(23, 7), clock())
    assert [result.status for result in report.results] == ["failed", "failed"]
    assert [row for row in failed_by_name(app) if row[2] == "failed"] == [
        ("me", "me", "failed", True), ("friend:친구01", "친구01", "failed", True)]
    assert texts(sandbox) == []


def test_alerts_inside_the_window_are_held_and_summarised_once_at_its_end(alert_app, clock, sandbox):
    app = alert_app('["me", "friend:친구01"]')
    clock.now = kst(22, 23, 10).astimezone(UTC)
    report = raise_alert(app, 1001, "45000")
    assert [(result.status, result.reason) for result in report.results] == [
        ("held", "quiet hours 22:00-07:00: in the summary at 07:00"), ("held", "quiet hours 22:00-07:00: in the summary at 07:00")]
    clock.now = kst(23, 2, 30).astimezone(UTC)
    raise_alert(app, 1002, "12000")
    raise_alert(app, 1001, "45000", sender=AlertSender(app))  # the reconciliation raising the same order
    assert texts(sandbox) == [] and texts(sandbox, "uuid-friend-01") == [] and rows(app) == []
    assert [key for key, _ in AlertSender(app).held(app.config.job("new-orders"))] == [
        "order:gid://shopify/Order/610000001001", "order:gid://shopify/Order/610000001002"]

    scheduler = BotScheduler(app)
    due = scheduler.due(kst(22, 22), kst(23, 8))
    assert due == [("new-orders", kst(23, 7))]
    clock.now = kst(23, 7).astimezone(UTC)
    scheduler.fire_at("new-orders", kst(23, 7), clock())
    (message,) = sandbox.received("me")
    assert message["object_type"] == "list"
    assert message["header_title"] == "🌙 밤사이 주문 2건 · 합계 ₩57,000"
    assert [(item["title"], item.get("description")) for item in message["contents"]] == [
        ("🛒 #1001 ₩45,000", "드립백 10개입 ×2"), ("🛒 #1002 ₩12,000", "드립백 10개입 ×2")]
    assert [button["title"] for button in message["buttons"]] == ["자세히 보기"]
    (summary,) = texts(sandbox)
    assert texts(sandbox, "uuid-friend-01") == [summary]
    assert {(row.slot_key, row.recipient, row.status) for row in rows(app)} == {
        ("quiet:new-orders:2026-11-23T07:00:00+09:00", "me", "sent"),
        ("quiet:new-orders:2026-11-23T07:00:00+09:00", "uuid:uuid-friend-01", "sent")}

    # Fired twice (a second instance, a catch-up after a restart): nothing more.
    clock.advance(minutes=1)
    scheduler.fire_at("new-orders", kst(23, 7), clock())
    BotScheduler(app).fire_at("new-orders", kst(23, 7), clock())
    assert BotScheduler(app).catch_up() == []
    assert len(texts(sandbox)) == 1 and len(texts(sandbox, "uuid-friend-01")) == 1
    assert AlertSender(app).held(app.config.job("new-orders")) == []

    # After the window: a held order raised again is not sent on its own; a new order is sent at once.
    clock.now = kst(23, 9).astimezone(UTC)
    assert {result.status for result in raise_alert(app, 1002).results} == {"held"}
    assert len(texts(sandbox)) == 1
    raise_alert(app, 1003)
    assert len(texts(sandbox)) == 2 and "새 주문 #1003" in texts(sandbox)[-1]


def test_a_failed_summary_is_retried_and_still_sent_once(alert_app, clock, sandbox):
    app = alert_app()
    clock.now = kst(22, 23).astimezone(UTC)
    raise_alert(app, 1001)
    sandbox.fail_next("/v2/api/talk/memo/default/send", 400, {"msg": "daily quota exceeded", "code": -532})
    clock.now = kst(23, 7).astimezone(UTC)
    report = BotScheduler(app).fire_at("new-orders", kst(23, 7), clock())
    assert [result.status for result in report.results] == ["failed"] and texts(sandbox) == []
    # The next firing for the same end (a restart's catch-up) sends it, once.
    clock.advance(minutes=30)
    assert BotScheduler(app).catch_up() == [CatchUp("new-orders", kst(23, 7), "summary")]
    assert BotScheduler(app).catch_up() == []
    (summary,) = texts(sandbox)
    assert "#1001" in summary
    assert [(row.slot_key, row.status) for row in rows(app)] == [("quiet:new-orders:2026-11-23T07:00:00+09:00", "sent")]


def test_nothing_held_means_no_summary(alert_app, clock, sandbox):
    app = alert_app()
    clock.now = kst(23, 7).astimezone(UTC)
    assert BotScheduler(app).fire_at("new-orders", kst(23, 7), clock()) is None
    assert texts(sandbox) == [] and rows(app) == []


def test_a_summary_missed_while_down_is_sent_by_the_catch_up(alert_app, clock, sandbox):
    app = alert_app()
    clock.now = kst(22, 23).astimezone(UTC)
    raise_alert(app, 1001)
    clock.now = kst(23, 9, 30).astimezone(UTC)  # the bot was down at 07:00
    assert BotScheduler(app).catch_up() == [CatchUp("new-orders", kst(23, 7), "summary")]
    (summary,) = texts(sandbox)
    assert summary.startswith("🌙 밤사이 주문 1건") and "#1001" in summary
    assert BotScheduler(app).catch_up() == [] and len(texts(sandbox)) == 1


def test_alerts_of_the_next_night_wait_for_their_own_summary(alert_app, clock, sandbox):
    app = alert_app()
    clock.now = kst(22, 23).astimezone(UTC)
    raise_alert(app, 1001)
    clock.now = kst(23, 7).astimezone(UTC)
    BotScheduler(app).fire_at("new-orders", kst(23, 7), clock())
    clock.now = kst(23, 22, 30).astimezone(UTC)
    raise_alert(app, 1002)
    clock.now = kst(24, 7).astimezone(UTC)
    BotScheduler(app).fire_at("new-orders", kst(24, 7), clock())
    first, second = texts(sandbox)
    assert "#1001" in first and "#1002" not in first
    assert "#1002" in second and "#1001" not in second


def test_a_long_night_fits_one_message():
    quiet = parse_quiet("22:00-07:00")
    alerts = [{"event": "new", "name": f"#{1000 + n}", "total": "19900", "currency": "KRW"} for n in range(40)]
    alerts.append({"event": "updated", "name": "#999", "changes_text": "배송지"})
    text = quiet_summary_text(quiet, alerts)
    assert len(text) <= TEXT_LIMIT
    assert text.startswith("🌙 밤사이 주문 40건 · 합계 ₩796,000, 변경 1건\n🛒 #1000 ₩19,900")
    shown = text.count("\n🛒 ")
    assert text.endswith(f"\n외 {41 - shown}건")


def test_summary_of_changes_only_and_of_a_daytime_window():
    text = quiet_summary_text(parse_quiet("12:00-13:00"),
                              [{"event": "updated", "name": "#1001", "changes_text": "배송지, 상품 구성"}])
    assert text == "🔕 12:00~13:00 사이 주문 변경 1건\n✏️ #1001 변경: 배송지, 상품 구성"
