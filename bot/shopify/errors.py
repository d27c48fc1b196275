"""Shopify's failures as named exceptions, each saying what a person should do about it."""

from __future__ import annotations


class ShopifyError(Exception):
    """Any Shopify answer that is not a success. `retryable`: asking again may work."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, shop: str | None = None):
        self.status, self.shop = status, shop
        super().__init__(message)


class ShopifyUnavailable(ShopifyError):
    """5xx, a timeout, a connection failure: retry later."""

    retryable = True


class ShopifyThrottled(ShopifyError):
    """THROTTLED (HTTP 200 with the error code, or 429); `retry_after` seconds if known."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ShopifyAuthError(ShopifyError):
    """401/403 from the Admin API: the stored token no longer works (revoked, uninstalled, scopes)."""


class ShopifyGraphQLError(ShopifyError):
    """A query answered with `errors` (a bug in the query, or a field the version lacks)."""


class ShopifyOAuthError(ShopifyError):
    """The token endpoint refused; `error` is Shopify's OAuth error string."""

    def __init__(self, message: str, *, error: str = "", **kwargs):
        self.error = error
        super().__init__(message, **kwargs)


class ShopifyReauthRequired(ShopifyOAuthError):
    """invalid_grant: the refresh token is dead; the merchant must install (authorise) again."""


class ShopifyBadCredentials(ShopifyOAuthError):
    """invalid_client: wrong client id/secret, or the app was uninstalled."""


class ShopifySessionTokenRefused(ShopifyOAuthError):
    """invalid_subject_token: the token exchange refused the App Bridge session token (expired,
    or not signed for this app); the page gets a fresh one and tries again."""


class ShopNotConnected(ShopifyError):
    """No usable install of this shop is stored."""
