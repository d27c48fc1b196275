"""Kakao's errors as named exceptions, chosen by the numeric `code` (never by `msg`).

API errors are `{"code": -530, "msg": "…"}`; OAuth errors are
`{"error", "error_description", "error_code": "KOE…"}`. Each OAuth error carries a hint
that says what to fix, mostly in the Kakao developers console.
"""

from __future__ import annotations

from typing import Any

from bot.util.logs import redact


class KakaoError(Exception):
    """Any answer from Kakao that is not a success. `retryable`: no message can have gone out."""

    retryable = False

    def __init__(self, code: int | str | None, msg: str, http_status: int | None = None, body: dict | None = None):
        self.code, self.msg, self.http_status = code, msg, http_status
        self.body = body or {}
        super().__init__(f"Kakao {code}: {msg}" if code is not None else f"Kakao: {msg}")


class KakaoAuthError(KakaoError):
    """-401: the access token expired or is invalid; refresh once and retry."""


class KakaoScopeError(KakaoError):
    """-402: the user did not consent to a scope this call needs."""

    @property
    def required_scopes(self) -> list[str]:
        return list(self.body.get("required_scopes") or [])

    def __str__(self) -> str:
        scopes = ", ".join(self.required_scopes) or "?"
        return (f"Kakao -402: consent missing for {scopes}. Enable the consent item in the Kakao console "
                f"([카카오 로그인] > [동의항목]) and run `kakao login` again")


class KakaoPermissionError(KakaoError):
    """-3 / -5: a console setting or an API permission is missing."""

    def __str__(self) -> str:
        return (f"Kakao {self.code}: {self.msg} — the app lacks a setting or permission: check the consent items "
                "and, for messages to non-members, the 'KakaoTalk friends/message' permission")


class KakaoBadRequest(KakaoError):
    """-2: a parameter was wrong (a bug on our side, or an invalid template)."""


class KakaoQuotaError(KakaoError):
    """-10: the app's quota for this API is used up."""


class KakaoDailyQuotaError(KakaoQuotaError):
    """-532 sender, -533 recipient, -536 sender–recipient pair: a daily message quota."""

    WHO = {-532: "the sender's daily quota (100)", -533: "the recipient's daily quota (100)",
           -536: "the sender–recipient pair's daily quota (20)"}

    def __str__(self) -> str:
        return f"Kakao {self.code}: {self.WHO.get(self.code, 'a daily quota')} is used up"


class KakaoRecipientRefused(KakaoError):
    """-530: the recipient refuses messages or has a private profile."""


class KakaoNotFriend(KakaoError):
    """-502: the recipient is not (or no longer) a friend of the sender."""


class KakaoNoTalkAccount(KakaoError):
    """-501: the user has no KakaoTalk account."""


class KakaoImageRejected(KakaoError):
    """-602 image over the size limit (5 MB), -606 too many images, -911 a format Kakao does not take."""


class KakaoUnavailable(KakaoError):
    """-1 temporary error, -603 internal timeout, -9798 maintenance, HTTP 5xx: retry later."""

    retryable = True


class KakaoSendUnknown(KakaoError):
    """The request went out and no answer came: the message may or may not have been sent."""


class KakaoUnreachable(KakaoError):
    """Kakao could not be reached at all (connection refused, DNS, connect timeout)."""

    retryable = True


_BY_CODE: dict[int, type[KakaoError]] = {
    -1: KakaoUnavailable, -2: KakaoBadRequest, -3: KakaoPermissionError, -5: KakaoPermissionError,
    -10: KakaoQuotaError, -401: KakaoAuthError, -402: KakaoScopeError, -501: KakaoNoTalkAccount,
    -502: KakaoNotFriend, -530: KakaoRecipientRefused, -532: KakaoDailyQuotaError,
    -533: KakaoDailyQuotaError, -536: KakaoDailyQuotaError, -603: KakaoUnavailable, -9798: KakaoUnavailable,
    -602: KakaoImageRejected, -606: KakaoImageRejected, -911: KakaoImageRejected,
}


def api_error(http_status: int, body: Any) -> KakaoError:
    """The exception for a kapi answer that is not a success."""
    body = body if isinstance(body, dict) else {}
    code = body.get("code")
    msg = str(body.get("msg") or f"HTTP {http_status}")
    if isinstance(code, int) and code in _BY_CODE:
        return _BY_CODE[code](code, msg, http_status, body)
    if http_status >= 500:
        return KakaoUnavailable(code, msg, http_status, body)
    if http_status == 401:
        return KakaoAuthError(code, msg, http_status, body)
    return KakaoError(code, msg, http_status, body)


# -- OAuth (kauth) ------------------------------------------------------------------


class KakaoOAuthError(KakaoError):
    """An OAuth answer with a KOE code; `hint` tells a person what to fix."""

    def __init__(self, error_code: str | None, error: str, description: str, http_status: int | None, hint: str):
        self.error, self.description, self.hint = error, description, hint
        super().__init__(error_code, description or error, http_status, {})

    def __str__(self) -> str:
        code = self.code or self.error
        return f"Kakao login failed ({code}: {self.description or self.error}). {self.hint}".strip()


class KakaoLoginRequired(KakaoOAuthError):
    """The refresh token is dead (expired, rotated away, revoked): a person must log in again."""


class KakaoNoLogin(KakaoLoginRequired):
    """No login is stored under the name: nothing failed at Kakao, so the message does not say "login failed"."""

    def __str__(self) -> str:
        return f"{self.description}: {self.hint}"


class KakaoRateLimited(KakaoOAuthError):
    """KOE237: too many tokens issued for this user; wait before asking again."""

    retryable = False


_HINTS = {
    "KOE004": "Kakao Login is off for this app: turn it on under [카카오 로그인] in the Kakao developers console.",
    "KOE005": "This is a test app and the user is not a member: add them under [앱] > [멤버].",
    "KOE006": "The redirect URI is not registered: add [kakao].redirect_uri to the app's redirect URIs (REST API key settings).",
    "KOE010": "Bad client secret: set KAKAO_CLIENT_SECRET to the client secret of the REST API key "
              "(on by default for new apps), or turn the client secret off in the console.",
    "KOE101": "Wrong app key: KAKAO_REST_API_KEY must be the app's REST API key.",
    "KOE205": "A requested consent item is not set up: enable 'talk_message' (카카오톡 메시지 전송) and "
              "'friends' (카카오 서비스 내 친구목록) under [카카오 로그인] > [동의항목].",
    "KOE237": "Kakao limits token issuance per user (20 access tokens / 10 min, 30 refresh tokens / hour): wait and retry.",
    "KOE303": "redirect_uri differs from the one used to authorize: [kakao].redirect_uri must match exactly.",
    "KOE320": "The authorization code expired or was already used: run `kakao login` again.",
    "KOE322": "The refresh token expired or was revoked: run `python -m bot kakao login` again.",
}


def oauth_error(http_status: int, body: Any, *, refreshing: bool = False, account: str = "default") -> KakaoOAuthError:
    """The exception for a kauth answer that is not a success."""
    body = body if isinstance(body, dict) else {}
    error_code = body.get("error_code")
    error = str(body.get("error") or f"HTTP {http_status}")
    # Kakao echoes a refused code in the description ("…for code=XYZ"): never repeat it.
    description = redact(str(body.get("error_description") or ""))
    hint = _HINTS.get(str(error_code), "")
    # A rate limit first: whatever `error` says with it, the login itself is not dead.
    if error_code == "KOE237":
        return KakaoRateLimited(error_code, error, description, http_status, hint)
    dead_refresh = refreshing and (error_code == "KOE322" or error == "invalid_grant")
    if dead_refresh:
        hint = f"Run `python -m bot kakao login --account {account}` to log in again."
        return KakaoLoginRequired(error_code, error, description, http_status, hint)
    if http_status >= 500 or error_code == "KOE003":
        error_obj = KakaoOAuthError(error_code, error, description, http_status, "Kakao had a temporary problem; retry later.")
        error_obj.retryable = True
        return error_obj
    return KakaoOAuthError(error_code, error, description, http_status, hint)
