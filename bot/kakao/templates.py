"""Kakao `template_object` builders that only ever produce templates Kakao accepts.

Kakao rejects or silently mangles templates that break its limits (text over 200
characters is cut mid-word, more than 2 buttons, links to domains not registered in the
app), so every builder here trims, drops and re-points instead of passing bad input on.
Raises TemplateError only when no valid template can be made (callers fall back to text).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urljoin, urlsplit

from bot.util.urls import same_origin

log = logging.getLogger(__name__)

TEXT_LIMIT = 200  # Kakao shows text, titles and descriptions up to 200 characters
BUTTON_TITLE_LIMIT = 14  # Kakao's guidance for button labels
MAX_BUTTONS = 2
LIST_MIN, LIST_MAX = 2, 3
FEED_MAX_ITEMS = 5

# A word boundary further back than this is not worth losing the text for: hard-cut instead.
_BOUNDARY_WINDOW = 30
_TRAILING_JUNK = " \t\r\n\u00a0\u3000.,;:!?·・…-–—_/\\|、。，．：；！？"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TemplateError(ValueError):
    """No valid Kakao template can be built from this input."""


@dataclass(frozen=True)
class Button:
    title: str
    url: str


@dataclass(frozen=True)
class ListItem:
    title: str
    description: str
    link: str


def trim_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, with "…"."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    # Look for a boundary within the first `limit` characters: the cut keeps at most
    # `limit - 1` of them, leaving room for the ellipsis.
    window = text[:limit]
    boundary = max(window.rfind(ch) for ch in (" ", "\n", "\t", "\u3000", "\u00a0"))
    if boundary >= limit - 1 - _BOUNDARY_WINDOW and boundary > 0:
        head = text[:boundary]
    else:
        head = text[: _safe_cut(text, limit - 1)]
    head = head.rstrip(_TRAILING_JUNK) or text[: _safe_cut(text, limit - 1)].rstrip()
    return head + "…"


def _safe_cut(text: str, cut: int) -> int:
    """Move a hard cut back so it does not split a combining mark or an emoji sequence."""
    while cut > 0 and (
        unicodedata.combining(text[cut])
        or text[cut] in "\u200d\ufe0e\ufe0f"
        or text[cut - 1] == "\u200d"
        or "\U0001f3fb" <= text[cut] <= "\U0001f3ff"  # skin-tone modifiers
    ):
        cut -= 1
    return cut


def text_template(
    text: str,
    *,
    link: str,
    web_domain: str,
    button_title: str | None = None,
    buttons: Sequence[Button] = (),
) -> dict[str, Any]:
    """A `text` template: text trimmed to 200 characters, links kept on `web_domain`."""
    origin = _origin(web_domain)
    text = trim_text(text.strip())
    if not text:
        raise TemplateError("text template needs some text")
    template: dict[str, Any] = {"object_type": "text", "text": text, "link": _link(link, origin)}
    if button_title is not None and button_title.strip():
        template["button_title"] = trim_text(button_title.strip(), BUTTON_TITLE_LIMIT)
    _add_buttons(template, buttons, origin)
    return template


def list_template(
    header_title: str,
    header_link: str,
    items: Sequence[ListItem],
    *,
    web_domain: str,
    buttons: Sequence[Button] = (),
) -> dict[str, Any]:
    """A `list` template with 2–3 contents; fewer than 2 usable items raise TemplateError."""
    origin = _origin(web_domain)
    header_title = trim_text(header_title.strip())
    if not header_title:
        raise TemplateError("list template needs a header title")
    contents = []
    for item in items:
        title = trim_text(item.title.strip())
        if not title:
            continue  # Kakao requires a title per content; an untitled one is dropped
        content: dict[str, Any] = {"title": title, "link": _link(item.link, origin)}
        description = trim_text(item.description.strip())
        if description:
            content["description"] = description
        contents.append(content)
    if len(contents) < LIST_MIN:
        raise TemplateError(f"list template needs at least {LIST_MIN} items, got {len(contents)}")
    template: dict[str, Any] = {
        "object_type": "list",
        "header_title": header_title,
        "header_link": _link(header_link, origin),
        "contents": contents[:LIST_MAX],
    }
    _add_buttons(template, buttons, origin)
    return template


def feed_template(
    title: str,
    description: str,
    *,
    link: str,
    web_domain: str,
    image_url: str | None = None,
    buttons: Sequence[Button] = (),
    items: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A `feed` template; `items` are (name, value) rows of `item_content`, at most 5 kept."""
    origin = _origin(web_domain)
    title, description = trim_text(title.strip()), trim_text(description.strip())
    if not title and not description:
        raise TemplateError("feed template needs a title or a description")
    content: dict[str, Any] = {"link": _link(link, origin)}
    if title:
        content["title"] = title
    if description:
        content["description"] = description
    if image_url:
        # Images are fetched by Kakao's servers, so any public http(s) host will do.
        parts = urlsplit(image_url)
        if parts.scheme in _DEFAULT_PORTS and parts.hostname:
            content["image_url"] = image_url
        else:
            log.warning("feed image dropped: not an http(s) URL (%s)", _redacted(image_url))
    template: dict[str, Any] = {"object_type": "feed", "content": content}
    rows = [
        {"item": trim_text(name.strip()), "item_op": trim_text(value.strip())}
        for name, value in items
        if name.strip()
    ]
    if rows:
        template["item_content"] = {"items": rows[:FEED_MAX_ITEMS]}
    _add_buttons(template, buttons, origin)
    return template


def _add_buttons(template: dict[str, Any], buttons: Sequence[Button], origin: str) -> None:
    made = []
    for button in buttons:
        title = trim_text(button.title.strip(), BUTTON_TITLE_LIMIT)
        if not title:
            continue
        made.append({"title": title, "link": _link(button.url, origin)})
    if len(made) > MAX_BUTTONS:
        log.warning("Kakao templates take %d buttons at most; %d dropped", MAX_BUTTONS, len(made) - MAX_BUTTONS)
    if made:
        template["buttons"] = made[:MAX_BUTTONS]


def _origin(web_domain: str) -> str:
    parts = urlsplit(web_domain)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise TemplateError(f"web_domain must be an http(s) origin, got {web_domain!r}")
    return web_domain.rstrip("/")


def _link(url: str | None, origin: str) -> dict[str, str]:
    """Kakao link object; anything off the registered domain points at the domain instead."""
    url = (url or "").strip()
    if url.startswith("/") and not url.startswith("//"):
        url = urljoin(origin + "/", url)  # a path is on our domain by construction
    if not url:
        url = origin
    elif not same_origin(url, origin):
        log.warning("link %s is not on the Kakao web domain %s; using the domain instead", _redacted(url), origin)
        url = origin
    return {"web_url": url, "mobile_web_url": url}


def _redacted(url: str) -> str:
    # Query strings and user info may carry tokens; logs get the place, not the secrets.
    parts = urlsplit(url)
    if not parts.scheme:
        return "(not a URL)"
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
