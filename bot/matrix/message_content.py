"""The content of a message the bot sends, from what the outbox holds: how it looks, who it pings, where it goes.

    message_content("Kept.")                                   an m.notice: never notifies (default rules)
    message_content("New request ...", msgtype="m.text", mention_users=(...,))
                                                               an alert: notifies, and highlights those named
    message_content(header, plain=True)                        patient-supplied words: body only, no HTML
    message_content("Claimed.", thread_root=alert_id)          an answer inside a submission's thread
    message_content("New ... (claimed)", replaces=alert_id)    an edit (m.replace) of an earlier message

Every message carries `m.mentions`, empty unless someone is named, so no body text ("@room", a user id or a
display name a patient typed) can ping anyone: clients skip the legacy body-matching mention rules for an
event that has `m.mentions`. A plain message has no `formatted_body`, so nothing in it is read as HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

TEXT_ONLY = "text_only"  # a payload's flag: patient-supplied words inside, send the body only (no HTML)
NOTICE = "m.notice"
CHOICES = "choices"  # a payload's list of {"label", "answer"}: the answers a patient's question takes
CHOICES_KEY = "uk.co.gpphotobot.choices"  # where the event carries them (Element ignores unknown keys)
TEXT = "m.text"


def render_markdown(text: str) -> str:
    """The little Markdown our texts use (**bold**, line breaks), as Matrix HTML."""
    escaped = html.escape(text, quote=False)
    bold = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return bold.replace("\n", "<br>")


def message_content(
    text: str,
    *,
    msgtype: str = NOTICE,
    plain: bool = False,
    mention_users: Sequence[str] = (),
    thread_root: str | None = None,
    reply_to: str | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
    mentions: dict[str, Any] = {"user_ids": sorted(set(mention_users))} if mention_users else {}
    content: dict[str, Any] = {"msgtype": msgtype}
    if plain:
        content["body"] = text
    else:
        content |= {
            "body": text.replace("**", ""),
            "format": "org.matrix.custom.html",
            "formatted_body": render_markdown(text),
        }
    if replaces is not None:
        # Clients show `m.new_content`; the outer body is the fallback for those that do not know edits.
        new_content = dict(content) | {"m.mentions": mentions}
        return {
            "msgtype": msgtype,
            "body": f"* {content['body']}",
            "m.new_content": new_content,
            "m.mentions": {},  # an edit pings nobody again
            "m.relates_to": {"rel_type": "m.replace", "event_id": replaces},
        }
    content["m.mentions"] = mentions
    if thread_root is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or thread_root},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def content_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A queued message's content; the payload holds `text` and, optionally, how to send it."""
    mention = payload.get("mention_users")
    content = message_content(
        str(payload["text"]),
        msgtype=TEXT if payload.get("msgtype") == TEXT else NOTICE,
        plain=bool(payload.get(TEXT_ONLY, False)),
        mention_users=tuple(str(user) for user in mention) if isinstance(mention, list) else (),
        thread_root=_event(payload.get("thread_root")),
        reply_to=_event(payload.get("reply_to")),
        replaces=_event(payload.get("replaces")),
    )
    choices = payload.get(CHOICES)
    if isinstance(choices, list) and choices and "m.new_content" not in content:
        content[CHOICES_KEY] = [
            {"label": str(choice["label"]), "answer": str(choice["answer"])}
            for choice in choices
            if isinstance(choice, dict) and "label" in choice and "answer" in choice
        ]
    return content


def _event(value: object) -> str | None:
    return value if isinstance(value, str) and value.startswith("$") else None
