"""Issue 8 item 25 and issue 10 item 6: `demo` runs the whole pipeline of SPEC §4 against the built-in
stand-ins — the Kakao half and the Shopify half (a shop connected and subscribed to what its jobs need,
a digest compared with the same hour yesterday and a week ago with its chart, one of each alert kind,
each through a signed webhook, the bot's server and its worker) — in one command, with no config and
no account, leaving nothing behind in the folder it runs in; only the chart's PNG is kept, elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_demo_shows_the_kakao_and_the_shopify_half_in_one_run(tmp_path):
    run, home = tmp_path / "run", tmp_path / "home"  # HOME apart: matplotlib keeps its font cache there
    run.mkdir()
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}  # no secrets, no BOT_CONFIG: none needed
    result = subprocess.run([sys.executable, "-m", "bot", "demo"], cwd=run, env=env, capture_output=True,
                            text=True, timeout=180)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # The Kakao half.
    assert "stored login 'default'" in out and "김민지: sent" in out
    # A shop connected with client credentials, subscribed to the topics its jobs need (sync_shop).
    assert "demo-store.myshopify.com connected with client credentials" in out
    assert ("webhooks the jobs need (orders/create, orders/updated, orders/cancelled, refunds/create, "
            "inventory_levels/update, orders/risk_assessment_changed, app/uninstalled)") in out
    assert ("subscribed ORDERS_CREATE, ORDERS_UPDATED, ORDERS_CANCELLED, REFUNDS_CREATE, INVENTORY_LEVELS_UPDATE, "
            "ORDERS_RISK_ASSESSMENT_CHANGED, APP_UNINSTALLED") in out

    # The digest compares, by hand over the stand-in's orders (bot.cli.demo_shopify): the last hour
    # ₩48,000 + ₩47,000 + ₩24,000 = ₩119,000 in 3 orders; the same hour yesterday ₩45,000 + ₩55,000 =
    # ₩100,000 in 2; a week ago ₩24,000 + ₩32,000 + ₩30,000 + ₩39,000 = ₩125,000 in 4.
    # 119/100 → +19%; 119/125 = 0.952 → −5%; 3/2 → +50%; 3/4 → −25%;
    # 39,667/50,000 = 0.7933 → −21%; 39,667/31,250 = 1.2693 → +27%.
    digest = ("   📊 demo-store 매출 · ", "   매출 ₩119,000 (어제 같은 시간 대비 +19%, 지난주 대비 −5%)\n"
              "   주문 3건 (어제 +50%, 지난주 −25%)\n   객단가 ₩39,667 (어제 −21%, 지난주 +27%)\n")
    assert all(part in out for part in digest), out
    # …as a feed message whose image is the one chart uploaded to the Kakao stand-in.
    assert "the chart: drawn once, uploaded to Kakao (800×400), sent as a feed message" in out
    assert re.search(r"   🖼 http://127\.0\.0\.1:\d+/dn/[0-9a-f]+/img\.png\n", out)
    assert "   • 매출: ₩119,000\n   • 주문: 3건\n   • 객단가: ₩39,667\n   • 취소: 0건\n   • 환불: 0건\n   [주문 보기]" in out
    kept = re.search(r"the chart sent in the digest, kept: (\S+\.png);", out)
    assert kept, out
    chart = Path(kept.group(1))
    try:
        with Image.open(chart) as image:
            image.load()  # decodes the whole PNG
            assert (image.format, image.size) == ("PNG", (800, 400))
        assert [path.name for path in chart.parent.iterdir()] == ["evening-digest.png"]  # the rest removed
    finally:
        shutil.rmtree(chart.parent, ignore_errors=True)

    # One of each alert kind, each accepted by the bot's server from a signed webhook and sent once.
    names = re.search(r"a new order (#\d+) of .* a high-risk order (#\d+) of .* once: (#\d+), unfulfilled", out,
                      re.DOTALL)
    assert names, out
    new, risky, late = names.groups()
    for step in (f"a new order {new} of ₩39,000 (min_total ₩30,000): orders/create → HTTP 200 → me: sent",
                 f"a high-risk order {risky} of ₩15,000 (below min_total: no new-order alert): orders/create → "
                 "HTTP 200 → me: sent",
                 f"{new} cancelled by the customer: orders/cancelled → HTTP 200 → me: sent",
                 f"{new} refunded: refunds/create → HTTP 200 → me: sent",
                 "제주 감귤 5kg down from 12 to 2 (threshold 3): inventory_levels/update → HTTP 200 → me: sent",
                 f"{late}, unfulfilled for 30 hours → me: sent"):
        assert step in out, step
    received = out.split("what each recipient received in KakaoTalk:", 1)[1]
    alerts = {"new order": f"── me (사장님)\n   🛒 새 주문 {new}\n   ₩39,000 · 1개\n   • 한라봉 3kg ×1\n",
              "risk": f"── me (사장님)\n   ⚠️ 위험 주문 {risky}: 취소 권장\n   ₩15,000 · 위험도 높음\n",
              "cancel": f"── me (사장님)\n   ❌ 주문 취소 {new}\n   ₩39,000 · 1개 · 사유: 고객 요청\n",
              "refund": f"── me (사장님)\n   ↩️ 환불 {new}\n   ₩39,000 환불\n",
              "stock": "── me (사장님)\n   📦 재고 부족 제주 감귤 5kg\n   SKU TANGERINE-5 · 남은 재고 2개 (기준 3개 이하)\n",
              "unfulfilled": f"── me (사장님)\n   ⏰ 미발송 30시간째 {late}\n   ₩32,000 · "}
    for kind, message in alerts.items():
        assert received.count(message) == 1, (kind, received)
    assert f"새 주문 {risky}" not in received  # below min_total
    assert received.count("── me (사장님)") == 8  # the menu, the digest and the six alerts: nothing else
    assert "Traceback" not in result.stderr
    assert list(run.iterdir()) == []  # everything lived in a temporary folder, removed after
