"""Commands in a submission's thread: the reply fallback is ignored and the thread's reference is meant."""

from __future__ import annotations

from handlers.staff import claims, names_a_reference, without_reply_fallback


def test_a_quoted_reply_fallback_is_not_part_of_the_command() -> None:
    """'> <@bot> New request...' quoted above a reply is dropped; an ordinary command is left alone."""
    assert without_reply_fallback("> <@bot:x> New photo request GP-7KQ2-M4XD\n> more\n\n!claim") == "!claim"
    assert without_reply_fallback("!claim GP-7KQ2-M4XD") == "!claim GP-7KQ2-M4XD"


def test_words_that_merely_look_like_eight_letters_are_not_references() -> None:
    """In a thread, 'changing' is the start of a reason, while 'GP-7KQ2-M4XD' or the thread's own reference
    typed without its prefix name a submission."""
    assert not names_a_reference("changing", "GP-7KQ2-M4XD")
    assert names_a_reference("7kq2m4xd", "GP-7KQ2-M4XD")
    assert names_a_reference("gp-aaaa-bbbb", "GP-7KQ2-M4XD")


def test_only_a_raised_hand_or_eyes_claim_whatever_the_skin_tone_or_presentation() -> None:
    """✋, ✋🏽, ✋️ and 👀 claim a submission; 👍, ❌, 🗑️ and text do not."""
    assert all(claims(key) for key in ("✋", "✋🏽", "✋\ufe0f", "👀"))
    assert not any(claims(key) for key in ("👍", "❌", "🗑️", "claim", ""))
