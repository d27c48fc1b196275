"""Kakao template builders: limits are enforced, foreign links re-pointed, nothing invalid out."""

from __future__ import annotations

import logging

import pytest

from bot.kakao.templates import (
    Button,
    ListItem,
    TemplateError,
    feed_template,
    list_template,
    text_template,
    trim_text,
)

DOMAIN = "https://bot.example.com"


# -- trim_text -------------------------------------------------------------------------
def test_short_text_is_untouched():
    assert trim_text("안녕하세요") == "안녕하세요"


def test_exactly_200_characters_is_untouched():
    text = "가" * 200
    assert trim_text(text) == text


def test_201_characters_without_whitespace_is_hard_cut():
    result = trim_text("가" * 201)
    assert result == "가" * 199 + "…"
    assert len(result) == 200


def test_korean_text_is_cut_at_a_word_boundary():
    text = ("오늘의 메뉴는 김치찌개 " * 30).strip()
    result = trim_text(text)
    assert len(result) <= 200
    assert result.endswith("…")
    assert text.startswith(result[:-1])
    # the cut falls between words: what is kept ends on a whole word
    assert text[len(result) - 1] == " "


def test_boundary_too_far_back_falls_back_to_hard_cut():
    text = "짧은 " + "가" * 300
    result = trim_text(text)
    assert result == text[:199] + "…"


def test_trailing_punctuation_is_dropped_before_the_ellipsis():
    text = "a" * 190 + ", " + "b" * 20
    assert trim_text(text) == "a" * 190 + "…"


def test_cut_at_a_line_break():
    text = "x" * 180 + "\n" + "y" * 40
    assert trim_text(text) == "x" * 180 + "…"


def test_small_limit():
    assert trim_text("자세히 보기 버튼 제목이 너무 깁니다", 14) == "자세히 보기 버튼 제목이…"
    assert len(trim_text("가" * 20, 14)) == 14


def test_hard_cut_does_not_split_an_emoji_sequence():
    text = "가" * 198 + "👍🏽" + "나" * 5
    result = trim_text(text)
    assert len(result) <= 200
    assert "\U0001f3fd" not in result  # the thumb goes with its skin tone, or not at all


# -- text template ------------------------------------------------------------------------
def test_text_template_shape():
    template = text_template("hello", link=f"{DOMAIN}/orders", web_domain=DOMAIN, button_title="자세히 보기")
    assert template == {
        "object_type": "text",
        "text": "hello",
        "link": {"web_url": f"{DOMAIN}/orders", "mobile_web_url": f"{DOMAIN}/orders"},
        "button_title": "자세히 보기",
    }


def test_text_is_trimmed_to_200():
    template = text_template("가" * 500, link=DOMAIN, web_domain=DOMAIN)
    assert len(template["text"]) == 200


def test_at_most_two_buttons():
    buttons = [Button(f"b{i}", f"{DOMAIN}/{i}") for i in range(4)]
    template = text_template("hi", link=DOMAIN, web_domain=DOMAIN, buttons=buttons)
    assert [b["title"] for b in template["buttons"]] == ["b0", "b1"]
    assert template["buttons"][1]["link"]["web_url"] == f"{DOMAIN}/1"


def test_button_title_is_trimmed_to_14():
    template = text_template("hi", link=DOMAIN, web_domain=DOMAIN, buttons=[Button("주문 내역 자세히 확인하러 가기", DOMAIN)])
    assert len(template["buttons"][0]["title"]) <= 14


def test_foreign_link_is_replaced_by_the_domain_and_logged_without_query(caplog):
    with caplog.at_level(logging.WARNING, logger="bot.kakao.templates"):
        template = text_template("hi", link="https://evil.example.net/x?token=SECRET", web_domain=DOMAIN)
    assert template["link"] == {"web_url": DOMAIN, "mobile_web_url": DOMAIN}
    assert "evil.example.net/x" in caplog.text
    assert "SECRET" not in caplog.text


@pytest.mark.parametrize(
    "url",
    ["http://bot.example.com/a", "https://bot.example.com:8443/a", "https://sub.bot.example.com/a", "javascript:alert(1)"],
)
def test_other_scheme_port_or_host_counts_as_foreign(url):
    template = text_template("hi", link=url, web_domain=DOMAIN)
    assert template["link"]["web_url"] == DOMAIN


def test_same_origin_variants_are_kept():
    assert text_template("hi", link="https://BOT.example.com:443/a", web_domain=DOMAIN)["link"]["web_url"] == (
        "https://BOT.example.com:443/a"
    )
    assert text_template("hi", link="/orders?id=1", web_domain=DOMAIN + "/")["link"]["web_url"] == (
        f"{DOMAIN}/orders?id=1"
    )


def test_button_links_are_checked_too():
    template = text_template("hi", link=DOMAIN, web_domain=DOMAIN, buttons=[Button("가기", "https://other.example/")])
    assert template["buttons"][0]["link"]["web_url"] == DOMAIN


def test_empty_text_is_refused():
    with pytest.raises(TemplateError):
        text_template("   ", link=DOMAIN, web_domain=DOMAIN)


def test_bad_web_domain_is_refused():
    with pytest.raises(TemplateError):
        text_template("hi", link=DOMAIN, web_domain="bot.example.com")


# -- list template ----------------------------------------------------------------------
def _items(n: int) -> list[ListItem]:
    return [ListItem(f"상품 {i}", f"설명 {i}", f"{DOMAIN}/p/{i}") for i in range(n)]


def test_list_with_one_item_raises():
    with pytest.raises(TemplateError):
        list_template("주문", DOMAIN, _items(1), web_domain=DOMAIN)


def test_list_with_four_items_keeps_three():
    template = list_template("주문", DOMAIN, _items(4), web_domain=DOMAIN)
    assert template["object_type"] == "list"
    assert [c["title"] for c in template["contents"]] == ["상품 0", "상품 1", "상품 2"]
    assert template["contents"][0] == {
        "title": "상품 0",
        "description": "설명 0",
        "link": {"web_url": f"{DOMAIN}/p/0", "mobile_web_url": f"{DOMAIN}/p/0"},
    }


def test_list_header_is_trimmed_and_links_checked():
    template = list_template("가" * 300, "https://elsewhere.example/", _items(2), web_domain=DOMAIN)
    assert len(template["header_title"]) == 200
    assert template["header_link"]["web_url"] == DOMAIN


# -- feed template ----------------------------------------------------------------------
def test_feed_template_keeps_five_items_and_two_buttons():
    template = feed_template(
        "오늘 주문",
        "3건",
        link=DOMAIN,
        web_domain=DOMAIN,
        image_url="https://cdn.example.org/a.png",
        buttons=[Button("a", DOMAIN), Button("b", DOMAIN), Button("c", DOMAIN)],
        items=[(f"상품{i}", "₩1,000") for i in range(7)],
    )
    assert template["object_type"] == "feed"
    assert template["content"]["image_url"] == "https://cdn.example.org/a.png"
    assert len(template["item_content"]["items"]) == 5
    assert template["item_content"]["items"][0] == {"item": "상품0", "item_op": "₩1,000"}
    assert len(template["buttons"]) == 2


def test_feed_drops_a_non_http_image():
    template = feed_template("t", "d", link=DOMAIN, web_domain=DOMAIN, image_url="file:///etc/passwd")
    assert "image_url" not in template["content"]
