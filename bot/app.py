"""Wiring: builds the database, vault, Kakao client and token minter from config + secrets.

Nothing here is global: each command builds one App and passes it on explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Callable

import requests

from bot.config import Config
from bot.db import Database, utcnow
from bot.deliveries import DeliveryLog
from bot.kakao_client import KakaoApi, KakaoAuth, KakaoHttp, new_session
from bot.retry import RetryPolicy
from bot.secrets import Secrets
from tokens.kakao import KakaoTokens
from tokens.vault import Vault


@dataclass
class App:
    config: Config
    secrets: Secrets
    clock: Callable[[], datetime] = utcnow
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @cached_property
    def db(self) -> Database:
        url = self.secrets.get("BOT_DATABASE_URL") or self.config.database.url
        return Database(url, base_dir=self.config.base_dir)

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.secrets.get("BOT_SECRET_KEY"))

    @cached_property
    def http(self) -> requests.Session:
        """For fetching pages; Kakao has its own session in `kakao_http`."""
        return new_session()

    @cached_property
    def kakao_http(self) -> KakaoHttp:
        return KakaoHttp(new_session(), timeout=self.config.kakao.timeout, retry=self.retry)

    @cached_property
    def kakao_auth(self) -> KakaoAuth:
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

    def kakao_api(self, account: str) -> KakaoApi:
        return KakaoApi(self.kakao_http, api_url=self.config.kakao.api_url,
                        tokens=self.kakao_tokens.source(account))

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
