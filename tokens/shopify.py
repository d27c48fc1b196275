"""Shopify Admin API tokens on demand, per (app, shop) install, stored encrypted.

Three ways a shop gets connected, one minting rule each:
- `oauth` (the install flow): an expiring offline token (1 h) with a refresh token.
  Reused until `margin` before expiry; then refreshed — the answer is a NEW pair, stored in the
  same transaction, under the row lock, and committed before the new access token is returned
  (since 2026-08-28 Shopify keeps the old refresh token valid until the new pair is used, so a
  crash between answer and commit is recoverable; the bot never relies on that and never sends
  a replaced refresh token again). An OAuth token without expiry
  (older non-expiring offline token) is used as is.
- `client_credentials` (the merchant's own app): a 24 h token, asked for again near expiry.
- `legacy` (an admin-created custom app's `shpat_…`): fixed, used as is.

Like the Kakao minter (tokens.kakao), under the same locks (tokens.minting): concurrent callers
refresh once, per install, in this process and across processes sharing the database; a dead grant
or refused credentials mark the install as needing a person, and later calls fail at once,
without asking Shopify again. Messages name the shop, the app and the command to run; they
never contain a token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bot.shopify.client import ShopifyOAuth, ShopifyTokenAnswer
from bot.shopify.errors import ShopifyBadCredentials, ShopifyReauthRequired, ShopNotConnected
from bot.shopify.signing import normalize_shop
from bot.store.db import Database, utcnow
from bot.util.report_logging import IN_REPORT
from tokens.minting import DeadLogin, MintLocks
from tokens.models import ShopifyInstall
from tokens.vault import Vault

log = logging.getLogger(__name__)

MODES = ("oauth", "client_credentials", "legacy")
ACTIVE = "active"
# Renew this long before expiry, so a token never dies between minting and use.
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class InstallStatus:
    """One install, for people, `shopify shops` and /healthz: never a token value."""

    app: str
    shop: str
    mode: str
    status: str  # active | invalid | needs_reauth | uninstalled
    status_reason: str | None
    scopes: tuple[str, ...]
    access_expires_at: datetime | None  # None: the token does not expire
    refresh_expires_at: datetime | None
    installed_at: datetime
    refreshed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def reconnect_hint(mode: str, shop: str, app: str) -> str:
    """What a person runs to connect `shop` to `app` again, by the way it was connected."""
    if mode == "client_credentials":
        return f"run `python -m bot shopify connect {shop} --app {app}`"
    if mode == "legacy":
        return (f"create a new Admin API token and run `python -m bot shopify add-token {shop} "
                f"--token-env VARIABLE --app {app}`")
    return f"open the install URL printed by `python -m bot shopify install {shop} --app {app}`"


def not_connected(shop: str, app: str | None = None) -> ShopNotConnected:
    which = f" with app {app!r}" if app else ""
    suffix = f" --app {app}" if app else ""
    return ShopNotConnected(
        f"{shop} is not connected{which}: run `python -m bot shopify connect {shop}{suffix}` (your own app, "
        f"client credentials) or open the URL of `python -m bot shopify install {shop}{suffix}` (OAuth)",
        shop=shop)


def unusable(row: ShopifyInstall) -> ShopNotConnected:
    what = {"needs_reauth": "needs the merchant to authorise the app again",
            "invalid": "has a token or credentials Shopify refused",
            "uninstalled": "was uninstalled from the shop"}.get(row.status, f"is {row.status}")
    reason = f" ({row.status_reason})" if row.status_reason else ""
    return ShopNotConnected(f"{row.shop} (app {row.app!r}) {what}{reason}: "
                            f"{reconnect_hint(row.mode, row.shop, row.app)}", shop=row.shop)


class ShopifyTokens:
    """Stores Shopify installs and mints their access tokens."""

    def __init__(self, db: Database, vault: Vault, *, oauth_for: Callable[[str], ShopifyOAuth],
                 clock: Callable[[], datetime] = utcnow, margin: timedelta = REFRESH_MARGIN):
        self.db, self.vault, self.oauth_for = db, vault, oauth_for
        self.clock, self.margin = clock, margin
        self._locks = MintLocks(db)

    # -- storing ---------------------------------------------------------------------
    def store(self, app: str, shop: str, mode: str, answer: ShopifyTokenAnswer) -> InstallStatus:
        """Keep a fresh token answer (code exchange, client credentials, pasted token); any older
        install of this app on this shop is replaced and becomes active again."""
        if mode not in MODES:
            raise ValueError(f"unknown Shopify connection mode {mode!r} (modes: {', '.join(MODES)})")
        shop = normalize_shop(shop)
        for attempt in range(2):
            try:
                with self._locks.held((app, shop)), self.db.session() as session:
                    row = self._find(session, app, shop)
                    if row is None:
                        row = ShopifyInstall(app=app, shop=shop)
                        session.add(row)
                    now = self.clock()
                    row.mode = mode
                    self._apply(row, answer, now, keep_scopes=False)
                    row.status, row.status_reason = ACTIVE, None
                    row.installed_at = now
                break
            except IntegrityError:
                # Another process inserted the same (app, shop) meanwhile: replace its row instead.
                if attempt:
                    raise
        log.info("Shopify %s: connected with app %r (%s)", shop, app, mode, extra=IN_REPORT)
        status = self.status(shop, app)
        assert status is not None
        return status

    def store_legacy(self, app: str, shop: str, token: str, scopes: str) -> InstallStatus:
        """An admin-created custom app's Admin API token: fixed, no expiry."""
        return self.store(app, shop, "legacy", ShopifyTokenAnswer(token, scopes or ""))

    # -- minting ---------------------------------------------------------------------
    def access_token(self, shop: str, app: str | None = None) -> str:
        """The access token of the active install of `shop` (app None: the only, or most recently
        installed, active one); renewed first when it expires within the margin."""
        return self._mint(shop, app)[1]

    def _mint(self, shop: str, app: str | None) -> tuple[str, str]:
        shop = normalize_shop(shop)
        with self.db.session() as session:
            row = self._pick(session, shop, app)
            app = row.app
            if not self._due(row):
                return app, self.vault.decrypt(row.access_token_enc)
        token = self._renew(app, shop)
        assert token is not None  # None only answers a refused token
        return app, token

    def renew_refused(self, shop: str, app: str, token: str) -> bool:
        """The Admin API answered 401 to `token` before its expiry (revoked early, rotated, clock skew).

        An install that can renew itself — an expiring OAuth token with a stored refresh token, or
        client credentials — is renewed once now: True, ask again. False: nothing to renew with (a
        legacy or non-expiring token), so the caller marks it. A renewal Shopify refuses marks the
        install (needs_reauth / invalid) and raises, as at expiry. If another caller has replaced
        `token` meanwhile, nothing is asked: True.
        """
        return self._renew(app, normalize_shop(shop), refused=token) is not None

    def _renew(self, app: str, shop: str, refused: str | None = None) -> str | None:
        """A renewed token when due (or when `refused` is the current one); None: `refused` cannot be renewed."""
        # updated_at is set to itself so that merely locking does not count as an update.
        lock_row = (update(ShopifyInstall).where(ShopifyInstall.app == app, ShopifyInstall.shop == shop)
                    .values(app=ShopifyInstall.app, updated_at=ShopifyInstall.updated_at))
        return self._locks.refresh((app, shop), lock_row, lambda session: self._renew_row(session, app, shop, refused))

    def _renew_row(self, session: Session, app: str, shop: str, refused: str | None) -> str | None | DeadLogin:
        row = self._find(session, app, shop, populate_existing=True)
        if row is None:
            raise not_connected(shop, app)
        if row.status != ACTIVE:
            raise unusable(row)
        if refused is None and not self._due(row):
            return self.vault.decrypt(row.access_token_enc)
        if refused is not None:
            current = self.vault.decrypt(row.access_token_enc)
            if current != refused:
                return current  # renewed by another caller meanwhile
            if not self._renewable(row):
                return None
        try:
            answer = self._ask_shopify(row)
        except (ShopifyReauthRequired, ShopifyBadCredentials) as exc:
            row.status = "needs_reauth" if isinstance(exc, ShopifyReauthRequired) else "invalid"
            row.status_reason = self._dead_reason(row, exc)
            return _dead(row, exc)
        except _NeedsPerson as exc:
            row.status = "needs_reauth"
            row.status_reason = f"{exc}; {reconnect_hint(row.mode, shop, app)}"
            return _dead(row, ShopifyReauthRequired(f"{shop} (app {app!r}): {row.status_reason}", error="expired",
                                                    shop=shop))
        self._apply(row, answer, self.clock(), keep_scopes=True)
        log.info("Shopify %s (app %r): %s token renewed, valid until %s", shop, app, row.mode,
                 f"{row.access_expires_at:%Y-%m-%d %H:%M} UTC" if row.access_expires_at else "no expiry")
        return answer.access_token

    @staticmethod
    def _renewable(row: ShopifyInstall) -> bool:
        """Whether the bot can get this install a new token without a person."""
        return row.mode == "client_credentials" or (row.mode == "oauth" and bool(row.refresh_token_enc))

    def _ask_shopify(self, row: ShopifyInstall) -> ShopifyTokenAnswer:
        if row.mode == "client_credentials":
            return self.oauth_for(row.app).client_credentials(row.shop)
        # oauth, expiring: only the stored refresh token can renew it.
        if not row.refresh_token_enc:
            raise _NeedsPerson("the access token expired and no refresh token is stored")
        if row.refresh_expires_at is not None and row.refresh_expires_at <= self.clock():
            raise _NeedsPerson(f"the refresh token expired at {row.refresh_expires_at:%Y-%m-%d %H:%M} UTC")
        return self.oauth_for(row.app).refresh(row.shop, self.vault.decrypt(row.refresh_token_enc))

    @staticmethod
    def _dead_reason(row: ShopifyInstall, exc: Exception) -> str:
        error = getattr(exc, "error", "") or type(exc).__name__
        if isinstance(exc, ShopifyReauthRequired):
            return (f"{error}: Shopify refused the refresh grant; {reconnect_hint('oauth', row.shop, row.app)}")
        return (f"{error}: Shopify refused app {row.app!r}'s credentials (wrong client id/secret, or the app "
                f"was uninstalled); {reconnect_hint(row.mode, row.shop, row.app)}")

    def _apply(self, row: ShopifyInstall, answer: ShopifyTokenAnswer, now: datetime, *, keep_scopes: bool) -> None:
        row.access_token_enc = self.vault.encrypt(answer.access_token)
        row.access_expires_at = now + timedelta(seconds=answer.expires_in) if answer.expires_in is not None else None
        if answer.refresh_token:
            row.refresh_token_enc = self.vault.encrypt(answer.refresh_token)
            row.refresh_expires_at = (now + timedelta(seconds=answer.refresh_token_expires_in)
                                      if answer.refresh_token_expires_in is not None else None)
        else:
            # No new refresh token: none stays usable — an old one lives on (since 2026-08-28) only
            # until the new access token is used, which is what happens next.
            row.refresh_token_enc, row.refresh_expires_at = None, None
        if answer.scope or not keep_scopes:
            row.scopes = answer.scope or ""
        row.refreshed_at = now

    def _due(self, row: ShopifyInstall) -> bool:
        """True if this install's token must be renewed before use (legacy and non-expiring: never)."""
        if row.mode == "legacy" or row.access_expires_at is None:
            return False
        return row.access_expires_at - self.margin <= self.clock()

    # -- what the API says ----------------------------------------------------------------
    def rejected(self, shop: str, app: str, reason: str, token: str | None = None) -> None:
        """The Admin API answered 401/403: the install is marked invalid, so that nothing retries.

        With `token` (the token that was refused), a refusal of a token that has since been
        replaced — another caller renewed it — changes nothing.
        """
        shop = normalize_shop(shop)
        with self._locks.held((app, shop)), self.db.session() as session:
            row = self._find(session, app, shop)
            if row is None or row.status != ACTIVE:
                return
            if token is not None and row.access_token_enc and self.vault.decrypt(row.access_token_enc) != token:
                log.info("Shopify %s (app %r): a replaced token was refused; the current one is kept", shop, app)
                return
            row.status = "invalid"
            row.status_reason = f"the Admin API refused the token: {reason}"
        log.error("Shopify %s (app %r): the Admin API refused the token (%s): %s", shop, app, reason,
                  reconnect_hint(row.mode, shop, app))

    def uninstalled(self, shop: str, app: str) -> None:
        """app/uninstalled: the tokens are dead — wipe them (not just mark them) and remember why."""
        shop = normalize_shop(shop)
        with self._locks.held((app, shop)):
            with self.db.session() as session:
                if self.db.is_sqlite:
                    # Zero the freed bytes of the old row instead of leaving them in the page.
                    session.execute(text("PRAGMA secure_delete = ON"))
                row = self._find(session, app, shop)
                if row is None:
                    log.info("Shopify %s: uninstall of app %r, which was not installed", shop, app)
                    return
                row.access_token_enc = ""
                row.refresh_token_enc = None
                row.access_expires_at = row.refresh_expires_at = None
                row.status = "uninstalled"
                row.status_reason = f"the app was uninstalled from the shop at {self.clock():%Y-%m-%d %H:%M} UTC"
            if self.db.is_sqlite:
                # The write-ahead log still holds older images of the page: fold it in and empty it.
                try:
                    with self.db.engine.connect() as connection:
                        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                except OperationalError as exc:  # busy readers: the log is reused later anyway
                    log.warning("could not truncate the SQLite write-ahead log: %s", exc)
        log.warning("Shopify %s: app %r was uninstalled; its tokens are wiped", shop, app)

    def source(self, shop: str, app: str | None = None) -> "ShopTokenSource":
        return ShopTokenSource(self, normalize_shop(shop), app)

    # -- rows --------------------------------------------------------------------------
    @staticmethod
    def _find(session, app: str, shop: str, populate_existing: bool = False) -> ShopifyInstall | None:  # noqa: ANN001
        options = {"populate_existing": True} if populate_existing else {}
        return session.execute(select(ShopifyInstall)
                               .where(ShopifyInstall.app == app, ShopifyInstall.shop == shop)
                               .execution_options(**options)).scalar_one_or_none()

    def _pick(self, session, shop: str, app: str | None) -> ShopifyInstall:  # noqa: ANN001
        """The install to use: of `app`, or the active one of `shop` installed last."""
        if app is not None:
            row = self._find(session, app, shop)
            if row is None:
                raise not_connected(shop, app)
            if row.status != ACTIVE:
                raise unusable(row)
            return row
        rows = list(session.scalars(select(ShopifyInstall).where(ShopifyInstall.shop == shop)
                                    .order_by(ShopifyInstall.installed_at.desc(), ShopifyInstall.updated_at.desc(),
                                              ShopifyInstall.id.desc())))
        for row in rows:
            if row.status == ACTIVE:
                return row
        if rows:
            raise unusable(rows[0])  # the latest install says best what to do
        raise not_connected(shop)

    # -- reporting -------------------------------------------------------------------
    def status(self, shop: str, app: str) -> InstallStatus | None:
        with self.db.session() as session:
            row = self._find(session, app, normalize_shop(shop))
            return _status(row) if row else None

    def all_status(self) -> list[InstallStatus]:
        with self.db.session() as session:
            rows = session.scalars(select(ShopifyInstall).order_by(ShopifyInstall.shop, ShopifyInstall.app))
            return [_status(row) for row in rows]


class _NeedsPerson(Exception):
    """Renewal is impossible without asking Shopify anything (no usable refresh token)."""


def _dead(row: ShopifyInstall, error: Exception) -> DeadLogin:
    return DeadLogin(error, log, "Shopify %s (app %r) needs a person: %s", (row.shop, row.app, row.status_reason))


def _status(row: ShopifyInstall) -> InstallStatus:
    return InstallStatus(row.app, row.shop, row.mode, row.status, row.status_reason,
                         tuple(scope.strip() for scope in row.scopes.split(",") if scope.strip()),
                         row.access_expires_at, row.refresh_expires_at, row.installed_at, row.refreshed_at)


class ShopTokenSource:
    """The token source of one shop (through one app, or whichever holds its active install),
    handed to a ShopifyGraphQL client: `access_token()` before a call, `renew_refused()` on a 401,
    `rejected(reason)` on a 401 that stays or a 403."""

    def __init__(self, tokens: ShopifyTokens, shop: str, app: str | None = None):
        self.tokens, self.shop, self.app = tokens, shop, app
        self._last = threading.local()  # per thread: the (app, token) this thread last handed out

    def access_token(self) -> str:
        app, token = self.tokens._mint(self.shop, self.app)
        self._last.value = (app, token)
        return token

    def renew_refused(self) -> bool:
        """The token this thread was last handed was refused (HTTP 401): renew it once if the install can."""
        last = getattr(self._last, "value", None)
        if last is None:
            return False
        return self.tokens.renew_refused(self.shop, last[0], last[1])

    def rejected(self, reason: str) -> None:
        last = getattr(self._last, "value", None)
        if last is not None:
            self.tokens.rejected(self.shop, last[0], reason, token=last[1])
        elif self.app is not None:
            self.tokens.rejected(self.shop, self.app, reason)

    def __repr__(self) -> str:
        return f"ShopTokenSource({self.shop!r}, app={self.app!r})"
