"""Plain-text preview of a Kakao template object, for `--dry-run`, `demo` and logs."""

from __future__ import annotations


def preview(template: dict) -> str:
    kind = template.get("object_type")
    if kind == "text":
        lines = [template.get("text", "")]
    elif kind == "list":
        lines = [template.get("header_title", "")]
        lines += [f"• {item.get('title', '')} {item.get('description', '')}".rstrip()
                  for item in template.get("contents", [])]
    elif kind == "feed":
        content = template.get("content", {})
        lines = [content.get("title", "")]
        if content.get("image_url"):
            lines.append(f"🖼 {content['image_url']}")
        lines.append(content.get("description", ""))
        lines += [f"• {item.get('item', '')}: {item.get('item_op', '')}"
                  for item in (template.get("item_content") or {}).get("items", [])]
    else:
        lines = [f"({kind or 'nothing'})"]
    buttons = [button.get("title", "") for button in template.get("buttons", [])]
    if template.get("button_title"):
        buttons.append(template["button_title"])
    if buttons:
        lines.append("[" + "] [".join(buttons) + "]")
    return "\n".join(line for line in lines if line)


def dry_run_lines(job: str, previews: list[tuple[str, dict]], *, chart_path: object = None,
                  chart_error: str | None = None, what: str = "dry run: nothing sent") -> list[str]:
    """What `send-now --dry-run` and `preview` print for one job: its chart, then each recipient's message."""
    lines = [f"== {job} ({what})"]
    if chart_path is not None:
        lines.append(f"   chart: {chart_path}")
    if chart_error:
        lines.append(f"   chart: none — {chart_error}")
    for label, template in previews:
        lines.append(f"-- to {label}")
        if template:
            lines.append(preview(template))
    return lines
