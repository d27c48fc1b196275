"""Issue 8 item 25: `demo` runs the whole pipeline of SPEC §4 against the built-in stand-ins — the Kakao
half and the Shopify half (a shop connected, an order digest, a webhook-driven new-order alert) — in one
command, with no config and no account, leaving nothing behind in the folder it runs in."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_shows_the_kakao_and_the_shopify_half_in_one_run(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no secrets, no BOT_CONFIG: none needed
    result = subprocess.run([sys.executable, "-m", "bot", "demo"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # The Kakao half.
    assert "stored login 'default'" in out and "김민지: sent" in out
    # A shop connected with client credentials, subscribed to webhooks.
    assert "demo-store.myshopify.com connected with client credentials" in out
    assert "ORDERS_CREATE" in out
    # The order digest from the Admin GraphQL API reached "me".
    assert "매출 ₩119,000 (어제 없음, 지난주 없음)\n   주문 3건 (" in out  # compared: jobs.digest_compare
    # A signed orders/create webhook, accepted by the bot's server and turned into an alert by its worker.
    assert "answered HTTP 200" in out
    assert "새 주문 #1004" in out and "한라봉 3kg ×1" in out
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # everything lived in a temporary folder, removed after
