"""What a quiet-hours summary says: the held-alert record, its plain text, and its Kakao list message.

Every alert kind supplies its own line for the summary in its outcome's context — `summary_group`
(what it counts as: "주문", "주문 변경", "취소", "환불", …), `summary_line` (one self-contained line,
e.g. "↩️ #1001 ₩12,000 환불") and optionally `summary_detail` (a second line, e.g. the items) — so
the summary reads right for kinds this module does not know. Records held before these keys
existed (new-order alerts) are read from their order fields.

Several held alerts become a Kakao `list` message: the header counts them by group ("🌙 밤사이
주문 2건 · 합계 ₩57,000, 환불 1건"), the first three are its items, more are counted in the header
("외 N건"), and a button opens the bot's page. One alert alone stays a text message. The plain text
(`quiet_summary_text`, cut to Kakao's 200 characters) is what `--dry-run`, `history` and logs show
and what is sent when no list can be made.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.kakao.templates import LIST_MAX, TEXT_LIMIT, Button, ListItem, TemplateError, list_template, text_template
from bot.util.quiet_hours import QuietWindow
from jobs.render import won

DETAILS_BUTTON = "자세히 보기"
ORDER_GROUP, CHANGE_GROUP = "주문", "주문 변경"


def held_record(context: dict[str, Any], until: datetime, now: datetime) -> dict[str, Any]:
    """The job-memory value of one held alert: what its summary line needs, nothing more."""
    return {"until": until.isoformat(), "held_at": now.isoformat(), "summary": None,
            "event": context.get("event") or "new", "name": str(context.get("name") or ""),
            "total": None if context.get("total") is None else str(context.get("total")),
            "currency": context.get("currency"), "item_count": context.get("item_count"),
            "changes_text": context.get("changes_text") or "", "test": bool(context.get("test")),
            "cancelled": bool(context.get("cancelled")),
            "group": str(context.get("summary_group") or ""), "line": str(context.get("summary_line") or ""),
            "detail": str(context.get("summary_detail") or "")}


def summary_entry(alert: dict[str, Any]) -> tuple[str, str, str]:
    """(group, line, detail) of a held alert, from its own summary keys or the order fields of old records."""
    if alert.get("line"):
        return alert.get("group") or "알림", alert["line"], alert.get("detail") or ""
    name = alert.get("name") or "(주문)"
    if alert.get("event") == "updated":
        return CHANGE_GROUP, f"✏️ {name} 변경: {alert.get('changes_text') or '-'}", ""
    money = f" {won(alert['total'], alert.get('currency'))}" if alert.get("total") is not None else ""
    flags = (" (테스트)" if alert.get("test") else "") + (" 취소됨" if alert.get("cancelled") else "")
    return ORDER_GROUP, f"🛒 {name}{money}{flags}", ""


def summary_header(quiet: QuietWindow, alerts: list[dict[str, Any]]) -> str:
    """'🌙 밤사이 주문 2건 · 합계 ₩57,000, 환불 1건': the alerts counted by group, in order of appearance."""
    head = "🌙 밤사이" if quiet.wraps else f"🔕 {quiet.start:%H:%M}~{quiet.end:%H:%M} 사이"
    groups: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        groups.setdefault(summary_entry(alert)[0], []).append(alert)
    parts = []
    for group, members in sorted(groups.items(), key=lambda item: item[0] != ORDER_GROUP):
        label = "변경" if group == CHANGE_GROUP and ORDER_GROUP in groups else group
        part = f"{label} {len(members)}건"
        if group == ORDER_GROUP:
            total = _sum(members)
            part += f" · 합계 {won(*total)}" if total is not None else ""
        parts.append(part)
    return f"{head} " + ", ".join(parts)


def quiet_summary_text(quiet: QuietWindow, alerts: list[dict[str, Any]]) -> str:
    """The header and a line per alert, cut to fit one Kakao text message ("외 N건" for the rest)."""
    text = summary_header(quiet, alerts)
    lines = [summary_entry(alert)[1] for alert in alerts]
    for index, line in enumerate(lines):
        left_after = len(lines) - index - 1
        reserve = len(f"\n외 {left_after}건") if left_after else 0
        if len(text) + 1 + len(line) + reserve > TEXT_LIMIT:
            return text + f"\n외 {len(lines) - index}건"
        text += "\n" + line
    return text


def quiet_summary_template(quiet: QuietWindow, alerts: list[dict[str, Any]], *, web_domain: str) -> dict[str, Any]:
    """The summary's Kakao message: a list of up to three alerts when there are several, else text."""
    text = quiet_summary_text(quiet, alerts)
    if len(alerts) >= 2:
        header = summary_header(quiet, alerts)
        if len(alerts) > LIST_MAX:
            header += f" (외 {len(alerts) - LIST_MAX}건)"
        items = [ListItem(line, detail, web_domain) for _, line, detail in map(summary_entry, alerts[:LIST_MAX])]
        try:
            return list_template(header, web_domain, items, web_domain=web_domain,
                                 buttons=[Button(DETAILS_BUTTON, web_domain)])
        except TemplateError:
            pass  # (no usable item titles) the text says it all
    return text_template(text, link=web_domain, web_domain=web_domain, button_title=DETAILS_BUTTON)


def _sum(alerts: list[dict[str, Any]]) -> tuple[Decimal, str | None] | None:
    """The total of the orders when they all have one and share a currency."""
    currencies = {alert.get("currency") for alert in alerts}
    if len(currencies) != 1 or any(alert.get("total") is None for alert in alerts):
        return None
    try:
        return sum((Decimal(alert["total"]) for alert in alerts), Decimal(0)), currencies.pop()
    except (InvalidOperation, TypeError, ValueError):
        return None
