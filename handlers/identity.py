"""The identity header of `!view`: whose photos these are and what the patient said, above the photos.

It is sent as plain text (no HTML, empty `m.mentions`: see `bot.matrix.message_content`), because it quotes
the patient verbatim: a note saying "@room" or "<b>" must reach the clinician as those characters and ping
nobody. Each line the patient wrote is quoted behind "| ", so it cannot pass for a line the bot wrote.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.submissions import PatientWords, Photo, Submission

PATIENT_TEXT_MARK = "Patient-supplied text, exactly as sent (not checked by the practice):"


def grouped_nhs_number(nhs_number: str) -> str:
    """'9991234567' -> '999 123 4567', as NHS numbers are written."""
    return f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}"


def _quoted(text: str) -> list[str]:
    return [f"    | {line}" for line in text.splitlines() or [""]]


def identity_header(
    submission: Submission,
    *,
    nhs_number: str | None,
    words: PatientWords,
    photos: Sequence[Photo],
    requester: str | None,
) -> list[str]:
    """The lines of the header, in order; the caller joins them into one plain message."""
    lines = [f"Submission {submission.reference}"]
    lines.append(f"NHS number: {grouped_nhs_number(nhs_number)}" if nhs_number else "NHS number: (erased)")
    lines.append(
        "Photo of: someone the sender acts for (with legal authority)"
        if submission.acting_for_someone
        else "Photo of: the patient themselves"
    )
    lines.append(
        "Intimate area: YES (describe, then destroy)" if submission.intimate else "Intimate area: no"
    )
    lines.append(
        "Storage: may be kept in the record"
        if submission.keep_in_record
        else "Storage: view then delete (the patient chose not to have it stored)"
    )
    if submission.request_id:
        lines.append(f"Requested by: {requester or 'a clinician'}")
        if words.requested_area:
            lines += ["Area requested:", *_quoted(words.requested_area)]
    warned = [photo for photo in photos if photo.quality]
    for photo in warned:
        lines.append(
            f"Photo {photo.number} quality warning given to the patient: {', '.join(photo.quality)};"
            " the patient chose to send it anyway"
        )
    if photos and not warned:
        lines.append("Photo quality: no warnings")
    quoted: list[str] = []
    for number, note in enumerate(words.notes, 1):
        quoted += [f"Note {number}:", *_quoted(note)]
    for number, caption in words.captions:
        quoted += [f"Caption of photo {number}:", *_quoted(caption)]
    if quoted:
        lines += ["", PATIENT_TEXT_MARK, *quoted]
    else:
        lines.append("The patient wrote no notes or captions.")
    return lines
