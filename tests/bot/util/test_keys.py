"""Stored keys keep their exact text across upgrades: a slot key, job-memory name or key that came
out differently after an upgrade would send an alert again or lose what was remembered.

The expected values below were computed by the functions as they were before their shortening
was shared, and written down literally: they must never be regenerated from the code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.delivery.alert_start import first_seen_key, memory_name
from bot.delivery.alerts import quiet_memory_name, quiet_slot_key
from bot.delivery.problems import alert_slot_key
from bot.webhooks.reconcile import state_key
from bot.webhooks.order_updates import update_slot_key

END = datetime(2026, 12, 3, 21, 0, tzinfo=timezone(timedelta(hours=9)))
# Inputs at, just under and just over each column's limit, far over it, in Korean, and with
# characters that mean something elsewhere (separators, escapes, NUL, astral plane).

ALERT_SLOT_KEY = [
    ("job-failing:menu", 3,
     'job-failing:menu#3'),
    ("", 1,
     '#1'),
    ("k" * 78, 1,
     ('kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
      'kkkkkkkkkkkkkkkkkkkkkk#1')),
    ("k" * 79, 1,
     ('kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
      'kkkkkkkkk~3b1914e1d855#1')),
    ("k" * 77, 12,
     ('kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
      'kkkkkkkkkkkkkkkkkkkkk#12')),
    ("k" * 78, 12,
     ('kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
      'kkkkkkkk~dedbb2a381ac#12')),
    ("job-failing:" + "x" * 300, 1,
     ('job-failing:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
      'xxxxxxxxx~de8524aeb586#1')),
    ("job-failing:" + "x" * 300, 123456,
     ('job-failing:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
      'xxxx~de8524aeb586#123456')),
    ('주문알림-서울점' * 10, 2,
     ('주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점'
      '주문알림-서울점주~74f63756ab27#2')),
    ('주문알림-서울점' * 40, 2,
     ('주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점'
      '주문알림-서울점주~bde7d741b071#2')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 2, 1,
     'a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀#1'),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 9, 1,
     ('a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%'
      '/\\"\'\n\x00é😀a~33d8e95b12fa#1')),
]

MEMORY_NAME = [
    ("shop.myshopify.com",
     'alert-start:shop.myshopify.com'),
    ("s" * 88,
     ('alert-start:ssssssssssssssssssssssssssssssssssssssssssss'
      'ssssssssssssssssssssssssssssssssssssssssssss')),
    ("s" * 89,
     ('alert-start:#9f4bf0b131f17da9c4f6e6e5aaa84e3ae9000221273'
      '3828fde629e1fa4e95034')),
    ("s" * 500 + ".myshopify.com",
     ('alert-start:#56c950cef5bb3782a1b07c9485814b5bbcbf3783983'
      'be15dcf05695d811cc822')),
    ('주문알림-서울점' * 11,
     ('alert-start:주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림'
      '-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점')),
    ('주문알림-서울점' * 12,
     ('alert-start:#1f191d51df5cf5af60bc326a7e9ad80c06b138287a2'
      'ebf6d1e9e5a24a961c44d')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 6,
     ('alert-start:#910e7bf342746e24116c400b114bc4cb93935f3d20f'
      '3ba979de19abb2650ab78')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 7,
     ('alert-start:#240cf79c0870bb192318be33f6b455390c84621b102'
      'df99732b65d35a84de54d')),
    ("",
     'alert-start:'),
]

MEMORY_KEY = [
    ("orders",
     'orders'),
    ("j" * 100,
     ('jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj'
      'jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj')),
    ("j" * 101,
     '#9d21bd9548841e0d9e872ae760489d652bd437ea7ba961450f4cb28c5d89af20'),
    ("j" * 1000,
     '#5d42c425374b0bfef81b01f05799939ab0bfac5e6a5ca2405da8e43e2a46eaf1'),
    ('주문알림-서울점' * 12,
     ('주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점'
      '주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점')),
    ('주문알림-서울점' * 13,
     '#35e575b232120f6dedb9852ead27a2d8df71d722a888fcd0ced7d3781f4ae81c'),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 7,
     '#240cf79c0870bb192318be33f6b455390c84621b102df99732b65d35a84de54d'),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 8,
     '#2c453c548728cfe3801696670219ff566b71b9c14ee8ee7a07e8a66d930792ae'),
    ("",
     ''),
]

QUIET_MEMORY_NAME = [
    ("orders",
     'quiet:orders'),
    ("j" * 94,
     ('quiet:jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj'
      'jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj')),
    ("j" * 95,
     ('quiet:#bfc6724eb4cf8d58d5e934a32612cb6ad4a97469b055b986a'
      '31fe5ba30a143d4')),
    ("j" * 1000,
     ('quiet:#5d42c425374b0bfef81b01f05799939ab0bfac5e6a5ca2405'
      'da8e43e2a46eaf1')),
    ('주문알림-서울점' * 11,
     ('quiet:주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문'
      '알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점')),
    ('주문알림-서울점' * 12,
     ('quiet:#1f191d51df5cf5af60bc326a7e9ad80c06b138287a2ebf6d1'
      'e9e5a24a961c44d')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 6,
     ('quiet:#910e7bf342746e24116c400b114bc4cb93935f3d20f3ba979'
      'de19abb2650ab78')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 7,
     ('quiet:#240cf79c0870bb192318be33f6b455390c84621b102df9973'
      '2b65d35a84de54d')),
    ("",
     'quiet:'),
]

QUIET_SLOT_KEY = [
    ("orders", END,
     'quiet:orders:2026-12-03T21:00:00+09:00'),
    ("j" * 48, END,
     ('quiet:jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj:2'
      '026-12-03T21:00:00+09:00')),
    ("j" * 49, END,
     ('quiet:jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj:'
      '2026-12#9d8ef3e1c751bf77')),
    ("j" * 48, END.astimezone(timezone.utc),
     ('quiet:jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj:2'
      '026-12-03T12:00:00+00:00')),
    ("j" * 500, END,
     ('quiet:jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj'
      'jjjjjjj#beda29acea7d89b7')),
    ('주문알림-서울점' * 6, END,
     ('quiet:주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점:2'
      '026-12-03T21:00:00+09:00')),
    ('주문알림-서울점' * 7, END,
     ('quiet:주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문'
      '알림-서울점:#55f7156ef9f466da')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 3, END,
     ('quiet:a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀:2'
      '026-12-03T21:00:00+09:00')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 4, END,
     ('quiet:a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a '
      'b\t:#~%/#237bc9ddffbfc689')),
    ("", END,
     'quiet::2026-12-03T21:00:00+09:00'),
]

STATE_KEY = [
    ("shop.myshopify.com",
     'reconcile:shop.myshopify.com'),
    ("s" * 90,
     ('reconcile:ssssssssssssssssssssssssssssssssssssssssssssss'
      'ssssssssssssssssssssssssssssssssssssssssssss')),
    ("s" * 91,
     ('reconcile:bdd077e3536f7e440d467a35045de9435663bfecaa32bd'
      'dc4dbb00ddd19c9a74')),
    ("s" * 500 + ".myshopify.com",
     ('reconcile:56c950cef5bb3782a1b07c9485814b5bbcbf3783983be1'
      '5dcf05695d811cc822')),
    ('주문알림-서울점' * 11,
     ('reconcile:주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서'
      '울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점')),
    ('주문알림-서울점' * 12,
     ('reconcile:1f191d51df5cf5af60bc326a7e9ad80c06b138287a2ebf'
      '6d1e9e5a24a961c44d')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 6,
     ('reconcile:910e7bf342746e24116c400b114bc4cb93935f3d20f3ba'
      '979de19abb2650ab78')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 7,
     ('reconcile:240cf79c0870bb192318be33f6b455390c84621b102df9'
      '9732b65d35a84de54d')),
    ("",
     'reconcile:'),
]

WEBHOOK_SLOT_KEY = [
    ("order-update:gid://shopify/Order/1:2026-12-03T12:00:00Z",
     'order-update:gid://shopify/Order/1:2026-12-03T12:00:00Z'),
    ("u" * 80,
     ('uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu'
      'uuuuuuuuuuuuuuuuuuuuuuuu')),
    ("u" * 81,
     ('uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu'
      'uuuuuuu#1cbf7616cf0e910f')),
    ("order-update:gid://shopify/Order/" + "9" * 200 + ":2026-12-03T12:00:00.123456Z",
     ('order-update:gid://shopify/Order/99999999999999999999999'
      '9999999#06130748821ca4c6')),
    ('주문알림-서울점' * 10,
     ('주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점'
      '주문알림-서울점주문알림-서울점주문알림-서울점')),
    ('주문알림-서울점' * 11,
     ('주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점주문알림-서울점'
      '주문알림-서울#48204c076e0248eb')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 5,
     ('a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%'
      '/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀')),
    ('a b\t:#~%/\\"\'\n\x00é😀' * 6,
     ('a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%/\\"\'\n\x00é😀a b\t:#~%'
      '/\\"\'\n\x00é#910e7bf342746e24')),
    ("",
     ''),
]


@pytest.mark.parametrize("key, episode, expected", ALERT_SLOT_KEY)
def test_alert_slot_key_is_pinned(key, episode, expected) -> None:
    assert alert_slot_key(key, episode) == expected


@pytest.mark.parametrize("shop, expected", MEMORY_NAME)
def test_memory_name_is_pinned(shop, expected) -> None:
    assert memory_name(shop) == expected


@pytest.mark.parametrize("job_name, expected", MEMORY_KEY)
def test_memory_key_is_pinned(job_name, expected) -> None:
    assert first_seen_key(job_name) == expected


@pytest.mark.parametrize("job_name, expected", QUIET_MEMORY_NAME)
def test_quiet_memory_name_is_pinned(job_name, expected) -> None:
    assert quiet_memory_name(job_name) == expected


@pytest.mark.parametrize("job_name, end, expected", QUIET_SLOT_KEY)
def test_quiet_slot_key_is_pinned(job_name, end, expected) -> None:
    assert quiet_slot_key(job_name, end) == expected


@pytest.mark.parametrize("shop, expected", STATE_KEY)
def test_state_key_is_pinned(shop, expected) -> None:
    assert state_key(shop) == expected


@pytest.mark.parametrize("key, expected", WEBHOOK_SLOT_KEY)
def test_webhook_slot_key_is_pinned(key, expected) -> None:
    assert update_slot_key(key) == expected
