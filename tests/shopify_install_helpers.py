"""The Shopify apps and shops of the install tests (OAuth and token exchange): names, keys, the config."""

from __future__ import annotations

import textwrap

PUBLIC = "http://127.0.0.1:8765"
SHOP, OTHER_SHOP = "first-shop.myshopify.com", "second-shop.myshopify.com"
KEY, SECRET, OLD_SECRET = "default-client-id", "default-secret-current-0123456789", "default-secret-previous-012345678"
SECOND_KEY, SECOND_SECRET = "second-client-id", "second-secret-0123456789abcdef0123"
BAD_SHOPS = ["evil.com", "x.myshopify.com.evil.com", "a/../b.myshopify.com", "https://x.myshopify.com",
             "x.myshopify.com:443", "x.myshopify.com/admin", "-x.myshopify.com", "myshopify.com", ""]


def config_text(origin: str, kakao_url: str | None = None) -> str:
    """Two Shopify apps on the stand-in at `origin`; with `kakao_url`, the Kakao stand-in too."""
    kakao = textwrap.dedent(f"""
        [kakao]
        redirect_uri = "{PUBLIC}/kakao/callback"
        auth_url = "{kakao_url}"
        api_url = "{kakao_url}"
        """) if kakao_url else ""
    return textwrap.dedent(f"""\
        [database]
        url = "sqlite:///install.sqlite3"

        [server]
        public_url = "{PUBLIC}/"

        [shopify]
        origin = "{origin}"

        [[shopify.apps]]
        name = "default"
        api_key_env = "SHOPIFY_API_KEY"
        api_secret_env = "SHOPIFY_API_SECRET"
        old_api_secret_env = "SHOPIFY_OLD_API_SECRET"
        scopes = ["read_orders"]

        [[shopify.apps]]
        name = "second"
        api_key_env = "SECOND_API_KEY"
        api_secret_env = "SECOND_API_SECRET"
        scopes = ["read_orders"]

        [[jobs]]
        name = "new-orders"
        kind = "shopify-order-alert"
        shop = "{SHOP}"
        to = ["me"]
        """) + kakao
