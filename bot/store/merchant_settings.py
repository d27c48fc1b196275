"""Embedded app merchants' settings in the database: one versioned JSON document per (app, shop).

What the document holds and means is `jobs.merchant`'s business; here it is stored and versioned:

- `save(app, shop, document, expected_version)` is optimistic: the page sends the version it read,
  and a save over a newer one is a VersionConflict (two admins editing at once never silently
  overwrite each other). Version 0 means "none saved yet".
- Every save and delete also bumps the one-row settings clock in the same transaction. Each
  instance polls `clock_version()` (one primary-key read) and rebuilds its merchant jobs when it
  moved, so a change takes effect within seconds on every instance, without a restart.

A merchant's jobs send from their own Kakao login, `merchant_account(app, shop)`: named here, below
every layer that needs it (the jobs, the connect flow, the webhooks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.store.db import Database, utcnow
from bot.store.models import MerchantSettings, SettingsClock

MERCHANT_PREFIX = "shop-"


def merchant_account(app_name: str, shop: str) -> str:
    """The Kakao login account of `shop`'s merchant in app `app_name`: "shop-" and 40 hex digits of a
    SHA-256 (fits the 64-character column; distinct per app and shop; no operator's name by accident)."""
    return MERCHANT_PREFIX + hashlib.sha256(f"{app_name}\n{shop}".encode()).hexdigest()[:40]


class VersionConflict(Exception):
    """The settings changed since the version the caller read."""

    def __init__(self, current: int):
        super().__init__(f"the settings were changed meanwhile (now version {current})")
        self.current = current


@dataclass(frozen=True)
class StoredSettings:
    app: str
    shop: str
    document: dict[str, Any]
    version: int
    updated_at: datetime


class MerchantSettingsStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.db, self.clock = db, clock

    def get(self, app: str, shop: str) -> StoredSettings | None:
        with self.db.engine.connect() as connection:
            row = connection.execute(select(MerchantSettings).where(
                MerchantSettings.app == app, MerchantSettings.shop == shop)).one_or_none()
        return _stored(row) if row is not None else None

    def all(self) -> list[StoredSettings]:
        with self.db.engine.connect() as connection:
            rows = connection.execute(select(MerchantSettings).order_by(MerchantSettings.app, MerchantSettings.shop))
            return [_stored(row) for row in rows]

    def clock_version(self) -> int:
        with self.db.engine.connect() as connection:
            return connection.execute(select(SettingsClock.version).where(SettingsClock.id == 1)).scalar_one()

    def save(self, app: str, shop: str, document: dict[str, Any], *, expected_version: int) -> StoredSettings:
        """Store `document` as the next version if the stored one is still `expected_version`."""
        now, text = self.clock(), json.dumps(document, ensure_ascii=False, sort_keys=True)
        try:
            with self.db.write_transaction() as connection:
                current = connection.execute(select(MerchantSettings.version).where(
                    MerchantSettings.app == app, MerchantSettings.shop == shop).with_for_update()).scalar()
                if (current or 0) != expected_version:
                    raise VersionConflict(current or 0)
                values = dict(document=text, version=expected_version + 1, updated_at=now)
                if current is None:
                    connection.execute(insert(MerchantSettings).values(app=app, shop=shop, **values))
                else:
                    connection.execute(update(MerchantSettings).where(
                        MerchantSettings.app == app, MerchantSettings.shop == shop).values(**values))
                _tick(connection)
        except IntegrityError:  # another instance stored the first version meanwhile
            raise VersionConflict((self.get(app, shop) or _EMPTY).version) from None
        return StoredSettings(app, shop, json.loads(text), expected_version + 1, now)

    def delete(self, app: str, shop: str) -> bool:
        """Forget the shop's settings (its jobs stop at the next poll); True if there were any."""
        with self.db.write_transaction() as connection:
            deleted = connection.execute(delete(MerchantSettings).where(
                MerchantSettings.app == app, MerchantSettings.shop == shop)).rowcount
            if deleted:
                _tick(connection)
        return bool(deleted)


_EMPTY = StoredSettings("", "", {}, 0, datetime.min)


def _tick(connection) -> None:  # noqa: ANN001 — a Connection inside write_transaction
    connection.execute(update(SettingsClock).where(SettingsClock.id == 1).values(version=SettingsClock.version + 1))


def _stored(row: Any) -> StoredSettings:
    return StoredSettings(row.app, row.shop, json.loads(row.document), row.version, row.updated_at)
