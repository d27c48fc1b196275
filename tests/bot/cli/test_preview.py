"""The plain-text fallback of messages (`send-now --dry-run`, demo): a feed reads as text too."""

from __future__ import annotations

from bot.cli.preview import preview
from bot.kakao.templates import Button, feed_template

DOMAIN = "https://bot.example.com"


def test_a_feed_shows_its_title_image_text_figures_and_buttons():
    feed = feed_template("📊 my-store 매출 · 08:00–18:00", "📦 주문 9건 · 매출 ₩257,000", link=DOMAIN,
                         web_domain=DOMAIN, image_url="https://k.kakaocdn.net/dn/a/img.png",
                         items=[("매출", "₩257,000"), ("주문", "9건")], buttons=[Button("주문 보기", DOMAIN)])

    assert preview(feed) == ("📊 my-store 매출 · 08:00–18:00\n"
                             "🖼 https://k.kakaocdn.net/dn/a/img.png\n"
                             "📦 주문 9건 · 매출 ₩257,000\n"
                             "• 매출: ₩257,000\n"
                             "• 주문: 9건\n"
                             "[주문 보기]")


def test_a_feed_without_image_or_items_is_its_title_and_text():
    feed = feed_template("제목", "본문", link=DOMAIN, web_domain=DOMAIN)
    assert preview(feed) == "제목\n본문"
