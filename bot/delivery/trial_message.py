"""A test message: what "테스트 메시지 보내기" on the embedded app's page sends, right now.

Delivered like any job's message — claimed, `sending` committed before each Kakao call, every
recipient's outcome recorded, Kakao's quotas counted — as job `TEST_JOB` with a slot of its own per
press ("run:<random>", like a plain `send-now`), so it shows in the sender's history and two presses
are two messages, never a resend of one.
"""

from __future__ import annotations

import secrets
from typing import Sequence

from bot.app import App
from bot.delivery.audience import app_fanout
from bot.delivery.fanout import FanoutReport
from bot.kakao.recipients import Recipient, resolve
from bot.kakao.templates import text_template

TEST_JOB = "test-message"
TEST_TEXT = ("[테스트] 카카오톡 알림이 연결되었습니다.\n"
             "이 메시지가 보이면 주문 소식과 알림을 받을 준비가 된 것입니다.")


def send_test_message(app: App, sender: str, recipients: Sequence[Recipient]) -> FanoutReport:
    """Send the test message from the Kakao login `sender` to `recipients` (friends looked up live)."""
    friends = app.kakao_api(sender).friends() if any(r.kind != "me" for r in recipients) else []
    targets, unreachable = resolve(recipients, friends)
    web_domain = app.config.kakao.web_domain
    template = text_template(TEST_TEXT, link=web_domain, web_domain=web_domain)
    fanout = app_fanout(app, sender, TEST_JOB, f"run:{secrets.token_hex(8)}", app.clock())
    return fanout.deliver(targets, unreachable, lambda _target: template)
