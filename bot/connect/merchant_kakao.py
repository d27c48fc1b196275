"""KakaoTalk for each merchant of the embedded app: their own Kakao login, connected from the app's page.

A merchant's login is a stored Kakao login like the operator's (`kakao login --account NAME`), under
an account name derived from the app and shop (`merchant_account`: "shop-" and 40 hex digits of a
SHA-256, so no operator's login name meets a merchant's by accident, and two shops never share one).
Everything the bot does with logins — minting access tokens, keeping rotated refresh
tokens, the health rules — applies unchanged.

Connecting: the page asks `start_connect` for Kakao's authorize URL and opens it in a new top-level
window (OAuth cannot run inside the admin's iframe). Its single-use `state` (purpose
`kakao:<merchant account>`, subject `<app> <shop>`) is what binds the login to the shop: the server's
/kakao/callback consumes it and stores the tokens under that account. The page learns the result by
asking `connection` again, without a reload.

The friends list is fetched live for each request (Kakao's policy: never stored). Until the
deployment's Kakao app has Kakao's friends/message permission, it holds only members of that app's
team; "me" needs no permission and always works.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.app import App
from bot.connect import oauth_states
from bot.connect.kakao_login import KAKAO_STATE_PREFIX
from bot.kakao.recipients import Friend
from tokens.kakao import LoginStatus
from tokens.login_health import account_problem

MERCHANT_PREFIX = "shop-"
REQUIRED_SCOPES = ("talk_message", "friends")
EXPIRED_KO = "카카오 로그인이 만료되었습니다. '카카오톡 연결'을 눌러 다시 연결하세요."
MISSING_SCOPES_KO = "카카오가 {scopes} 권한을 허용하지 않았습니다. 다시 연결하면서 모두 동의해 주세요."
TEAM_ONLY_KO = ("이 앱은 아직 카카오의 '카카오톡 친구/메시지' 권한이 없어, 카카오 앱 팀 멤버로 등록된 친구만 "
                "보입니다. 운영자가 카카오 디벨로퍼스에서 권한을 신청하면 모든 친구에게 보낼 수 있습니다. "
                "'나에게 보내기'는 권한 없이도 됩니다.")


def merchant_account(app_name: str, shop: str) -> str:
    """The Kakao login account of `shop`'s merchant in app `app_name` (fits the 64-character column)."""
    return MERCHANT_PREFIX + hashlib.sha256(f"{app_name}\n{shop}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class KakaoConnection:
    """What the page shows about the merchant's KakaoTalk: never a token value."""

    status: LoginStatus | None
    problem_ko: str | None  # why it cannot send until the merchant connects again

    @property
    def state(self) -> str:
        if self.status is None:
            return "not_connected"
        return "needs_login" if self.problem_ko else "connected"


def start_connect(app: App, app_name: str, shop: str) -> str:
    """Kakao's authorize URL with a fresh single-use state bound to this shop's login."""
    account = merchant_account(app_name, shop)
    state = oauth_states.issue(app.db, f"{KAKAO_STATE_PREFIX}{account}", f"{app_name} {shop}", clock=app.clock)
    return app.kakao_auth.authorize_url(state)


def connection(app: App, app_name: str, shop: str) -> KakaoConnection:
    account = merchant_account(app_name, shop)
    status = app.kakao_tokens.status(account)
    if status is None:
        return KakaoConnection(None, None)
    if account_problem(app.db, app.vault, account, app.clock()):
        return KakaoConnection(status, EXPIRED_KO)
    missing = [scope for scope in REQUIRED_SCOPES if scope not in status.scopes]
    if "talk_message" in missing:
        return KakaoConnection(status, MISSING_SCOPES_KO.format(scopes=", ".join(missing)))
    return KakaoConnection(status, None)


def friends(app: App, app_name: str, shop: str) -> list[Friend]:
    """The merchant's friends who linked the Kakao app, live from Kakao (KakaoError if it fails)."""
    return app.kakao_api(merchant_account(app_name, shop)).friends()
