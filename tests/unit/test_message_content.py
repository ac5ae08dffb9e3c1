"""What the bot's messages look like on the wire: who they ping, whether they render HTML, where they go."""

from __future__ import annotations

from types import SimpleNamespace

from bot.ids import RoomID
from bot.matrix.events import MediaMessage, convert, relations
from bot.matrix.message_content import content_of, message_content


def test_plain_messages_carry_no_html_and_ping_nobody() -> None:
    """Patient-supplied text goes out as the body only, with empty m.mentions."""
    content = message_content("@room <b>hi</b> **x**", plain=True)
    assert content == {"msgtype": "m.notice", "body": "@room <b>hi</b> **x**", "m.mentions": {}}


def test_alerts_are_text_and_name_who_must_act() -> None:
    """An alert is m.text with the named users in m.mentions; an ordinary reply is a notice with HTML."""
    alert = content_of({"text": "New **GP-1**", "msgtype": "m.text", "mention_users": ["@b:x", "@a:x"]})
    assert alert["msgtype"] == "m.text"
    assert alert["m.mentions"] == {"user_ids": ["@a:x", "@b:x"]}
    assert alert["formatted_body"] == "New <strong>GP-1</strong>"
    reply = content_of({"text": "Kept."})
    assert (reply["msgtype"], reply["m.mentions"]) == ("m.notice", {})


def test_thread_answers_and_edits() -> None:
    """An answer in a thread relates to its root; an edit replaces the alert and pings nobody again."""
    threaded = message_content("Claimed.", thread_root="$root", reply_to="$cmd")
    assert threaded["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": "$cmd"},
    }
    edit = message_content("New GP-1 (claimed)", msgtype="m.text", mention_users=["@a:x"], replaces="$alert")
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$alert"}
    assert edit["body"] == "* New GP-1 (claimed)"
    assert edit["m.mentions"] == {}
    assert edit["m.new_content"]["body"] == "New GP-1 (claimed)"


def _image(content: dict[str, object]) -> object:
    source = {"type": "m.room.message", "content": content}
    return SimpleNamespace(source=source, event_id="$e", sender="@p:x", server_timestamp=1, decrypted=True)


def test_a_caption_is_the_body_when_a_filename_differs() -> None:
    """Element X's caption (body differs from filename) is kept; a plain file name is not a caption."""
    file = {"url": "mxc://x/y", "key": {"k": "k"}, "iv": "i", "hashes": {"sha256": "h"}}
    captioned = convert(
        _image({"msgtype": "m.image", "body": "rash on my arm", "filename": "a.jpg", "file": file}),
        RoomID("!r:x"),
    )
    bare = convert(_image({"msgtype": "m.image", "body": "a.jpg", "file": file}), RoomID("!r:x"))
    assert isinstance(captioned, MediaMessage) and captioned.caption == "rash on my arm"
    assert isinstance(bare, MediaMessage) and bare.caption is None
    assert "rash" not in repr(captioned)


def test_relations_of_threads_and_replies() -> None:
    """A thread message names its root; a reply names the event it answers; junk names nothing."""
    assert relations({"m.relates_to": {"rel_type": "m.thread", "event_id": "$r"}}) == ("$r", None)
    assert relations({"m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}) == (None, "$q")
    assert relations({"m.relates_to": "junk"}) == (None, None)
