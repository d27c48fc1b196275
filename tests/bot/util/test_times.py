"""When jobs run: durations, cron expressions (weekday names only) in a zone, slot instants across DST."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.util.times import duration_text, local_time, parse_cron, parse_duration, slot_instant

UTC = timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
BERLIN = ZoneInfo("Europe/Berlin")


def fires(trigger, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times from `start`, in UTC."""
    out, previous, now = [], None, start
    for _ in range(count):
        instant = trigger.get_next_fire_time(previous, now)
        out.append(instant.astimezone(UTC))
        previous, now = instant, instant + timedelta(microseconds=1)
    return out


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("0m", 0), (" 30 m ", 1800), ("90m", 5400),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "m", "30 minutes", "1.5h", "-5m", "30M", "1w", "", "30m5s"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert repr(text) in str(info.value) and '"30m"' in str(info.value)


# -- cron ------------------------------------------------------------------------------------------


def test_weekday_names():
    trigger = parse_cron("0 21 * * mon-fri", UTC)
    # Friday 2026-11-20 22:00 UTC: the next are Monday to Friday of the week after, at 21:00.
    got = fires(trigger, datetime(2026, 11, 20, 22, 0, tzinfo=UTC), 6)
    assert got == [datetime(2026, 11, day, 21, 0, tzinfo=UTC) for day in (23, 24, 25, 26, 27)] + [
        datetime(2026, 11, 30, 21, 0, tzinfo=UTC)]
    assert {instant.strftime("%a") for instant in got} == {"Mon", "Tue", "Wed", "Thu", "Fri"}


def test_weekday_list_and_month_names():
    trigger = parse_cron("30 9 * jan,dec sat,sun", UTC)
    got = fires(trigger, datetime(2026, 11, 30, tzinfo=UTC), 3)
    assert got == [datetime(2026, 12, 5, 9, 30, tzinfo=UTC), datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
                   datetime(2026, 12, 12, 9, 30, tzinfo=UTC)]


def test_steps_ranges_and_day_of_month():
    assert fires(parse_cron("*/20 9-10 * * *", UTC), datetime(2026, 11, 22, 10, 30, tzinfo=UTC), 3) == [
        datetime(2026, 11, 22, 10, 40, tzinfo=UTC), datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 20, tzinfo=UTC)]
    assert fires(parse_cron("0 8 1,15 * *", UTC), datetime(2026, 11, 2, tzinfo=UTC), 2) == [
        datetime(2026, 11, 15, 8, 0, tzinfo=UTC), datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]


@pytest.mark.parametrize("expression", ["0 8 * * 1-5", "0 8 * * 0", "0 8 * * 7", "0 8 * * mon,3", "0 8 * * */2",
                                        "0 8 * * mon-fri/2"])
def test_numeric_weekday_is_refused(expression):
    with pytest.raises(ValueError) as info:
        parse_cron(expression)
    assert "weekdays as names" in str(info.value) and "mon-fri" in str(info.value)


def test_day_of_month_and_weekday_together_are_refused():
    # cron: the 1st OR any Monday; APScheduler: a 1st that is a Monday. Neither is silently chosen.
    with pytest.raises(ValueError, match="not both"):
        parse_cron("0 8 1 * mon")
    with pytest.raises(ValueError, match="not both"):
        parse_cron("0 8 1-7 * mon")


@pytest.mark.parametrize("expression, reason", [
    ("0 8 * *", "needs 5 fields"),
    ("0 8 * * * 2026", "needs 5 fields"),
    ("@daily", "needs 5 fields"),
    ("", "needs 5 fields"),
    ("61 8 * * *", "higher than the maximum"),
    ("0 25 * * *", "higher than the maximum"),
    ("0 8 0 * *", "lower than the minimum"),
    ("0 8 * 0 *", "lower than the minimum"),
    ("0 8 * * sun-sat", "must not be higher than the maximum"),
    ("x 8 * * *", "Unrecognized expression"),
    ("0 8 31 2 *", "never fires"),
    ("0 8 31 apr,jun,sep,nov *", "never fires"),
])
def test_bad_cron(expression, reason):
    with pytest.raises(ValueError, match=reason):
        parse_cron(expression)


def test_the_29th_of_february_is_possible():
    first = parse_cron("0 8 29 2 *", UTC).get_next_fire_time(None, datetime(2026, 3, 1, tzinfo=UTC))
    assert first == datetime(2028, 2, 29, 8, 0, tzinfo=UTC)


def test_the_zone_is_applied():
    trigger = parse_cron("0 8 * * mon-fri", SEOUL)
    # Sunday 2026-11-22 00:00 UTC is Sunday 09:00 in Seoul; Monday 08:00 KST is Sunday 23:00 UTC.
    first = trigger.get_next_fire_time(None, datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    assert first.astimezone(UTC) == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert first.astimezone(SEOUL).strftime("%a %H:%M") == "Mon 08:00"


def test_without_a_zone_it_is_utc():
    first = parse_cron("0 8 * * mon-fri").get_next_fire_time(None, datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_cron_keeps_the_local_time_across_a_dst_change():
    trigger = parse_cron("0 8 * * *", BERLIN)
    got = fires(trigger, datetime(2026, 3, 28, 0, 0, tzinfo=UTC), 3)
    assert got == [datetime(2026, 3, 28, 7, 0, tzinfo=UTC),   # CET, +01:00
                   datetime(2026, 3, 29, 6, 0, tzinfo=UTC),   # CEST from 29 March, +02:00
                   datetime(2026, 3, 30, 6, 0, tzinfo=UTC)]


# -- slot instants -----------------------------------------------------------------------------------


def test_slot_instant_in_seoul():
    instant = slot_instant(time(8), date(2026, 11, 23), SEOUL)
    assert instant.astimezone(UTC) == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert instant.isoformat() == "2026-11-23T08:00:00+09:00"  # the form slot keys take


def test_slot_instant_on_the_dst_change_days():
    # Europe/Berlin springs forward on 29 March 2026 (02:00 → 03:00) and falls back on 25 October.
    assert slot_instant(time(8), date(2026, 3, 28), BERLIN).astimezone(UTC) == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    spring = slot_instant(time(8), date(2026, 3, 29), BERLIN)
    assert spring.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert spring.isoformat() == "2026-03-29T08:00:00+02:00"
    autumn = slot_instant(time(8), date(2026, 10, 25), BERLIN)
    assert autumn.astimezone(UTC) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    assert autumn.isoformat() == "2026-10-25T08:00:00+01:00"


def test_slot_instant_in_the_skipped_hour_is_a_real_wall_time():
    # 02:30 does not exist on 29 March in Berlin: the instant is the one an hour after 01:30,
    # shown as the wall time it really is, so a slot key never names a time that never happened.
    instant = slot_instant(time(2, 30), date(2026, 3, 29), BERLIN)
    assert instant.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert instant.isoformat() == "2026-03-29T03:30:00+02:00"
    assert instant.astimezone(UTC).astimezone(BERLIN).isoformat() == instant.isoformat()


def test_slot_instant_in_the_repeated_hour_is_the_first_occurrence():
    instant = slot_instant(time(2, 30), date(2026, 10, 25), BERLIN)
    assert instant.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert instant.isoformat() == "2026-10-25T02:30:00+02:00"


def test_slot_instant_is_aware_and_in_the_zone():
    instant = slot_instant(time(12), date(2026, 11, 23), SEOUL)
    assert instant.tzinfo is not None and instant.utcoffset() == timedelta(hours=9)
    assert (instant.date(), instant.time()) == (date(2026, 11, 23), time(12))


@pytest.mark.parametrize("delta, text", [
    (timedelta(hours=2), "2 h"), (timedelta(minutes=30), "30 min"), (timedelta(seconds=45), "45 s"),
    (timedelta(minutes=90), "90 min"),
])
def test_duration_text_reads_as_a_person_says_it(delta, text):
    assert duration_text(delta) == text


def test_local_time_shows_an_instant_in_the_zone_to_the_minute_or_second_with_or_without_its_offset():
    instant = datetime(2026, 12, 3, 3, 0, 5, tzinfo=UTC)
    assert local_time(instant, SEOUL) == "2026-12-03 12:00 KST"
    assert local_time(instant, SEOUL, seconds=True) == "2026-12-03 12:00:05 KST"
    assert local_time(instant, SEOUL, offset=True) == "2026-12-03 12:00 KST (UTC+0900)"
