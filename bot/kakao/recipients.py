"""Who a job sends to: `me`, `friend:<nickname>`, `uuid:<uuid>`, and resolving them.

Friends are resolved from a friends list fetched for the run (Kakao's policy: friend lists
are not stored); an unknown nickname or a friend who does not accept messages is reported
by name and skipped, and the others still get their message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_UUID = re.compile(r"^[A-Za-z0-9_-]{4,128}$")


REFUSES_MESSAGES = "does not accept messages (allowed_msg=false)"  # the friends list says so: skipped


@dataclass(frozen=True)
class Recipient:
    kind: str  # "me" | "friend" | "uuid"
    value: str = ""

    def __str__(self) -> str:
        return "me" if self.kind == "me" else f"{self.kind}:{self.value}"


def parse_recipient(text: str) -> Recipient:
    text = text.strip()
    if text == "me":
        return Recipient("me")
    kind, sep, value = text.partition(":")
    value = value.strip()
    if sep and kind == "friend" and value and len(value) <= 100:
        return Recipient("friend", value)
    if sep and kind == "uuid" and _UUID.match(value):
        return Recipient("uuid", value)
    raise ValueError(f"recipient {text!r} must be \"me\", \"friend:NICKNAME\" or \"uuid:UUID\"")


@dataclass(frozen=True)
class Friend:
    uuid: str
    nickname: str
    allowed_msg: bool
    favorite: bool = False


@dataclass(frozen=True)
class Target:
    """A resolved recipient: `key` identifies it in deliveries ("me" or "uuid:…")."""

    key: str
    label: str  # for people: "me", a nickname
    uuid: str | None = None  # None for "me"


@dataclass(frozen=True)
class Unreachable:
    key: str
    label: str
    reason: str


def resolve(recipients: Iterable[Recipient], friends: list[Friend] | None) -> tuple[list[Target], list[Unreachable]]:
    """Map configured recipients to sendable targets; `friends` None = the list could not be had."""
    by_uuid = {friend.uuid: friend for friend in friends or []}
    by_nick: dict[str, list[Friend]] = {}
    for friend in friends or []:
        by_nick.setdefault(friend.nickname, []).append(friend)
    targets: dict[str, Target] = {}
    problems: list[Unreachable] = []
    for recipient in recipients:
        if recipient.kind == "me":
            targets.setdefault("me", Target("me", "me"))
            continue
        if friends is None:
            problems.append(Unreachable(str(recipient), recipient.value, "friends list unavailable"))
            continue
        if recipient.kind == "uuid":
            friend = by_uuid.get(recipient.value)
            if friend is None:
                problems.append(Unreachable(str(recipient), recipient.value, "not in the friends list (not a friend, or has not linked the app)"))
                continue
        else:
            matches = by_nick.get(recipient.value, [])
            if len(matches) != 1:
                why = "no friend with this nickname" if not matches else f"{len(matches)} friends share this nickname: use uuid:…"
                problems.append(Unreachable(str(recipient), recipient.value, why))
                continue
            friend = matches[0]
        if not friend.allowed_msg:
            problems.append(Unreachable(f"uuid:{friend.uuid}", friend.nickname, REFUSES_MESSAGES))
            continue
        targets.setdefault(f"uuid:{friend.uuid}", Target(f"uuid:{friend.uuid}", friend.nickname, friend.uuid))
    return list(targets.values()), problems
