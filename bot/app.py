"""Wiring: builds the database, vault, Kakao client and token minter from config + secrets.

Nothing here is global: each command builds one App and passes it on explicitly.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Callable

import requests

import jobs
from bot.config import loader
from bot.config.model import Config, ConfigError, JobConfig
from bot.config.secrets import Secrets
from bot.kakao.client import KakaoApi, KakaoAuth, KakaoHttp
from bot.shopify.client import ShopifyApp, ShopifyHttp, ShopifyOAuth
from bot.shopify.graphql import ShopifyGraphQL
from bot.store.db import Database, utcnow
from bot.store.deliveries import DeliveryLog
from bot.store.merchant_settings import MerchantSettingsStore
from bot.util.http import new_session
from bot.util.progress import QUIET, Progress
from bot.util.redaction import Redactor
from bot.util.retry import RetryPolicy
from tokens.kakao import KakaoTokens
from tokens.shopify import ShopifyTokens
from jobs.merchant import MerchantJobs
from tokens.vault import Vault


def load_config(path: str | os.PathLike, *, require_file: bool = False) -> Config:
    """`config.toml` read and validated, its jobs checked against the job kinds of `jobs/`."""
    return loader.load_config(path, jobs=jobs.CATALOG, require_file=require_file)


@dataclass
class App:
    config: Config
    secrets: Secrets
    clock: Callable[[], datetime] = utcnow
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # The secret values this App holds, masked in what it logs, prints and stores (bot.util.redaction).
    redactor: Redactor = field(default_factory=Redactor, repr=False)

    @cached_property
    def db(self) -> Database:
        url = self.secrets.get("BOT_DATABASE_URL") or self.config.database.url
        return Database(url, base_dir=self.config.base_dir, redactor=self.redactor)

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.secrets.get("BOT_SECRET_KEY"), redactor=self.redactor)

    @cached_property
    def http(self) -> requests.Session:
        """For fetching pages; Kakao has its own session in `kakao_http`."""
        return new_session()

    @cached_property
    def kakao_http(self) -> KakaoHttp:
        return KakaoHttp(new_session(), timeout=self.config.kakao.timeout, retry=self.retry)

    @cached_property
    def kakao_auth(self) -> KakaoAuth:
        self.redactor.add(self.secrets.get("KAKAO_CLIENT_SECRET"))
        return KakaoAuth(self.kakao_http, auth_url=self.config.kakao.auth_url,
                         rest_api_key=self.secrets.require("KAKAO_REST_API_KEY", "the Kakao app's REST API key"),
                         client_secret=self.secrets.get("KAKAO_CLIENT_SECRET"),
                         redirect_uri=self.config.kakao.redirect_uri)

    @cached_property
    def kakao_tokens(self) -> KakaoTokens:
        return KakaoTokens(self.db, self.vault, self.kakao_auth, clock=self.clock)

    @cached_property
    def deliveries(self) -> DeliveryLog:
        return DeliveryLog(self.db, clock=self.clock)

    # -- jobs: config.toml's and the embedded app merchants' ----------------------------
    @cached_property
    def merchant_settings(self) -> MerchantSettingsStore:
        return MerchantSettingsStore(self.db, clock=self.clock)

    @cached_property
    def merchant_jobs(self) -> MerchantJobs:
        return MerchantJobs(self.merchant_settings)

    def jobs(self) -> list[JobConfig]:
        """Every job this bot runs: config.toml's, then each merchant's (as of the last refresh)."""
        return [*self.config.jobs, *self.merchant_jobs.current()]

    # -- Shopify ------------------------------------------------------------------------
    def shopify_app(self, name: str) -> ShopifyApp:
        """The configured app `name` with its credentials (MissingSecret if they are not set)."""
        for app in self.config.shopify.apps:
            if app.name == name:
                old_secret = self.secrets.get(app.old_api_secret_env) if app.old_api_secret_env else None
                self.redactor.add(old_secret, self.secrets.get(app.api_secret_env))
                return ShopifyApp(name=app.name, scopes=app.scopes, old_api_secret=old_secret,
                                  api_key=self.secrets.require(app.api_key_env, f"client id of Shopify app {name!r}"),
                                  api_secret=self.secrets.require(app.api_secret_env,
                                                                  f"client secret of Shopify app {name!r}"))
        known = ", ".join(app.name for app in self.config.shopify.apps)
        raise ConfigError(self.config.path, "shopify.apps", f"no Shopify app named {name!r} (apps: {known})")

    @cached_property
    def shopify_http(self) -> ShopifyHttp:
        return ShopifyHttp(new_session(), retry=self.retry)

    def shopify_oauth(self, app_name: str) -> ShopifyOAuth:
        return ShopifyOAuth(self.shopify_http, origin=self.config.shopify.origin, app=self.shopify_app(app_name))

    @cached_property
    def shopify_tokens(self) -> ShopifyTokens:
        return ShopifyTokens(self.db, self.vault, oauth_for=self.shopify_oauth, clock=self.clock)

    def shopify_graphql(self, shop: str, progress: Progress = QUIET) -> ShopifyGraphQL:
        """The Admin GraphQL API of `shop`, through whichever app holds its active install."""
        return ShopifyGraphQL(self.shopify_http, origin=self.config.shopify.origin, shop=shop,
                              api_version=self.config.shopify.api_version, tokens=self.shopify_tokens.source(shop),
                              progress=progress)

    def kakao_api(self, account: str) -> KakaoApi:
        return KakaoApi(self.kakao_http, api_url=self.config.kakao.api_url,
                        tokens=self.kakao_tokens.source(account))

    @cached_property
    def webhook_wakeup(self) -> threading.Event:
        """Set when a webhook was stored: wakes this App's webhook worker at once."""
        return threading.Event()

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
