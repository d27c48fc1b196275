"""QuotaBook: Kakao's daily quotas counted from the deliveries table, per Korean calendar day."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import insert

from bot.delivery.fanout import Fanout
from bot.kakao.client import FriendSendResult
from bot.kakao.quota import APP_DAILY, ME_RESERVE, PAIR_DAILY, RECIPIENT_DAILY, SENDER_DAILY, QuotaBook, quota_day
from bot.kakao.recipients import Target
from bot.store.db import Database
from bot.store.deliveries import DeliveryLog
from bot.store.models import Delivery
from bot.store.quota_counts import load_quota_book

DAY = "2026-11-22"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc)  # 12:00 in Seoul
_ids = count()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'quota.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


def add(db: Database, n: int, *, sender: str = "default", recipient: str | None = None, status: str = "sent",
        day: str = DAY) -> None:
    """n deliveries; each a distinct recipient unless `recipient` is given."""
    rows = []
    for _ in range(n):
        i = next(_ids)
        rows.append(dict(job="earlier", slot_key=f"run:{i}", recipient=recipient or f"uuid:someone-{i}", label="x",
                         sender=sender, status=status, quota_day=day, claimed_by="test", late=False,
                         created_at=NOW, updated_at=NOW))
    if rows:
        with db.session() as session:
            session.execute(insert(Delivery), rows)


def book(db: Database, recipients: list[str], sender: str = "default", day: str = DAY) -> QuotaBook:
    with db.session() as session:
        return load_quota_book(session, sender, day, recipients)


def takes(quota: QuotaBook, recipient: str, n: int, *, alert: bool = False) -> list[str | None]:
    return [quota.take(recipient, alert=alert) for _ in range(n)]


def test_the_limits_are_kakaos():
    assert (SENDER_DAILY, RECIPIENT_DAILY, PAIR_DAILY, APP_DAILY, ME_RESERVE) == (100, 100, 20, 30_000, 5)


# -- sender -----------------------------------------------------------------------------------


def test_sender_normal_messages_stop_at_95(db):
    add(db, 90)
    quota = book(db, ["uuid:a", "uuid:b", "me"])
    assert takes(quota, "uuid:a", 3) == [None] * 3
    assert takes(quota, "uuid:b", 2) == [None] * 2
    refusal = quota.take("uuid:b")
    assert refusal is not None
    assert "95/100" in refusal and "kept for problem reports" in refusal
    assert quota.take("me") is not None  # an ordinary message to me does not get the reserve


def test_alerts_to_me_may_use_the_reserve_up_to_100(db):
    add(db, 95)
    quota = book(db, ["me", "uuid:a"])
    assert quota.take("uuid:a", alert=True) is not None  # the reserve is for me only
    assert quota.take("me") is not None
    assert takes(quota, "me", ME_RESERVE, alert=True) == [None] * ME_RESERVE
    refusal = quota.take("me", alert=True)
    assert refusal is not None and "100/100" in refusal


def test_other_senders_do_not_use_this_senders_quota(db):
    add(db, 100, sender="someone-else")
    quota = book(db, ["uuid:a"])
    assert quota.take("uuid:a") is None
    assert book(db, ["uuid:a"], sender="someone-else").take("uuid:a") is not None


# -- recipient and pair -----------------------------------------------------------------------------


def test_recipient_gets_at_most_100_from_all_senders(db):
    for sender in ("s1", "s2", "s3", "s4", "s5"):
        add(db, 19, sender=sender, recipient="uuid:popular")
    add(db, 4, sender="s6", recipient="uuid:popular")
    quota = book(db, ["uuid:popular", "uuid:other"])  # 99 received today
    assert quota.take("uuid:popular") is None
    refusal = quota.take("uuid:popular")
    assert refusal is not None and "recipient" in refusal and "100" in refusal
    assert quota.take("uuid:other") is None


def test_pair_gets_at_most_20(db):
    add(db, PAIR_DAILY - 1, recipient="uuid:friend")
    add(db, 30, sender="other-sender", recipient="uuid:busy")
    quota = book(db, ["uuid:friend", "uuid:busy"])
    assert quota.take("uuid:friend") is None
    refusal = quota.take("uuid:friend")
    assert refusal is not None and "pair" in refusal and "20" in refusal
    assert takes(quota, "uuid:busy", PAIR_DAILY) == [None] * PAIR_DAILY  # other senders' pairs don't count
    assert quota.take("uuid:busy") is not None


def test_pair_limit_does_not_apply_to_me(db):
    add(db, 30, recipient="me")
    quota = book(db, ["me"])
    assert quota.take("me") is None


# -- app ----------------------------------------------------------------------------------------------


def test_app_gets_at_most_30000(db):
    for sender in range(300):  # spread over senders and recipients: only the app total is reached
        add(db, 100 if sender < 299 else 99, sender=f"sender-{sender}")
    quota = book(db, ["uuid:a", "uuid:b"])
    assert quota.app_total == APP_DAILY - 1
    assert quota.take("uuid:a") is None
    refusal = quota.take("uuid:b")
    assert refusal is not None and "app" in refusal and "30000" in refusal


# -- what counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,counts", [("sending", True), ("sent", True), ("unknown", True),
                                           ("failed", False), ("skipped", False), ("claimed", False)])
def test_which_statuses_count(db, status, counts):
    add(db, PAIR_DAILY, recipient="uuid:friend", status=status)
    quota = book(db, ["uuid:friend"])
    assert quota.sender_total == (PAIR_DAILY if counts else 0)
    assert (quota.take("uuid:friend") is not None) is counts


def test_only_the_same_korean_day_counts(db):
    add(db, 95, day="2026-11-21")
    add(db, 95, day="2026-11-23")
    quota = book(db, ["uuid:a"])
    assert quota.sender_total == 0
    assert quota.take("uuid:a") is None


def test_quota_day_is_the_korean_calendar_day():
    assert quota_day(datetime(2026, 11, 21, 23, 30, tzinfo=timezone.utc)) == "2026-11-22"
    assert quota_day(datetime(2026, 11, 21, 14, 59, tzinfo=timezone.utc)) == "2026-11-21"
    assert quota_day(datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)) == "2026-11-22"


class FakeApi:
    """Stands in for KakaoApi: every send succeeds."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def minted(self) -> "FakeApi":
        return self

    def fresh(self) -> bool:
        return True

    def send_to_me(self, template: dict) -> None:
        self.sent.append("me")

    def send_to_friends(self, uuids, template) -> FriendSendResult:  # noqa: ANN001
        self.sent.extend(uuids)
        return FriendSendResult(list(uuids), {})


def fan_out(db: Database, at: datetime, uuids: list[str], job: str = "menu") -> tuple[FakeApi, object]:
    api = FakeApi()
    fanout = Fanout(DeliveryLog(db, clock=lambda: at), api, job, f"slot-{at.isoformat()}", "default", at)
    targets = [Target(f"uuid:{u}", u, u) for u in uuids]
    return api, fanout.deliver(targets, [], lambda _t: {"object_type": "text"})


def test_a_delivery_at_2330_utc_counts_for_the_next_korean_day(db):
    late_evening_utc = datetime(2026, 11, 21, 23, 30, tzinfo=timezone.utc)  # 08:30 on the 22nd in Seoul
    api, report = fan_out(db, late_evening_utc, ["f1", "f2", "f3"])
    assert api.sent == ["f1", "f2", "f3"]
    assert book(db, ["uuid:f1"], day="2026-11-22").sender_total == 3
    assert book(db, ["uuid:f1"], day="2026-11-21").sender_total == 0


def test_fanout_skips_by_quota_with_the_counts_of_the_korean_day(db):
    add(db, 93, day="2026-11-22")
    add(db, 50, day="2026-11-21")  # the day before in Seoul: does not count
    at = datetime(2026, 11, 21, 23, 30, tzinfo=timezone.utc)
    api, report = fan_out(db, at, ["f1", "f2", "f3", "f4"])
    assert api.sent == ["f1", "f2"]
    by_label = {r.label: r for r in report.results}
    assert {label: r.status for label, r in by_label.items()} == {"f1": "sent", "f2": "sent", "f3": "skipped",
                                                                  "f4": "skipped"}
    assert "quota" in by_label["f3"].reason and "quota" in by_label["f4"].reason
    # The next Korean day starts afresh.
    api, report = fan_out(db, at + timedelta(hours=16), ["f3", "f4"], job="menu2")
    assert api.sent == ["f3", "f4"]


def test_a_smaller_reserve_lets_normal_messages_use_more_of_the_sender_quota(db):
    add(db, 97)
    with db.session() as session:
        no_reserve = load_quota_book(session, "default", DAY, ["uuid:a"], reserve=0)
        default = load_quota_book(session, "default", DAY, ["uuid:a"])
    assert takes(no_reserve, "uuid:a", 4) == [None, None, None, no_reserve.take("uuid:a")]
    assert "daily quota (100/100)" in no_reserve.take("uuid:a")
    assert "5 kept for problem reports" in default.take("uuid:a")
