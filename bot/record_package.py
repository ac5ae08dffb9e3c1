"""The record package a clinician exports: the photos, the description, the decisions, and a FHIR resource.

    package = build_record_package(RecordPackageInput(...))
    package.file_name   "record-GP-7KQ2-M4XD.zip"
    package.data        the zip's bytes; package.mime is "application/zip"

A pure function: no I/O, no clock, no state. The caller (the clinician's `export` command) loads and
decrypts the record versions, builds the input, posts the zip encrypted to the clinician room, and audits it.

What is in the zip (entries in sorted order, so `unzip -l` reads the same every time)
    decisions.json     the package format, purpose, reference, the NHS number, the patient's notes and
                       captions (verbatim), the keep/destroy decision and its reason, the consents, each
                       photo's file, type, size, SHA-256, received time and edits, and who exported it when
    description.txt    the clinician's description, UTF-8 exactly as written (empty if none was written)
    fhir-bundle.json   a FHIR R4 Bundle of type "collection": one `DocumentReference` (the written record:
                       description, decision, the patient's words) and one `Media` resource per photo
    photo-1.jpg, ...   the record versions, byte for byte, numbered in the order given

Neutral names
    No name inside the zip says whose photo it is or what it shows: no NHS number, no body area, no date.
    The zip's own name carries only the reference ("record-GP-7KQ2-M4XD.zip",
    "second-opinion-GP-7KQ2-M4XD.zip"), or for teaching eight random hex digits ("teaching-3f9a0c1e.zip").

Purposes, and the policy each one carries (rules 3 and 10 of the product brief)
    record          for the patient's record: the NHS number is the FHIR `subject`. No consent is needed.
    second-opinion  for a colleague: as `record`, and refused (`PackageRefusedError`) unless the latest consent
                    answer for "second-opinion" is "yes".
    teaching        de-identified: no NHS number, no reference, no practice name and none of the patient's
                    own words (notes, captions) are written anywhere, even if the input carries them, and
                    the zip's name is random. Refused unless the latest
                    consent answer for "teaching" is "yes", and refused if the description or the decision's
                    reason quotes the NHS number (when the caller passes it, to be checked) or the reference:
                    free text cannot be scrubbed reliably, so the clinician edits it instead.
    Who gave a consent is recorded as the consents table has it ('patient' or 'legal-authority'), never as a
    Matrix id; the staff ids in `decided_by` and `exported_by` are written as given.

Deterministic
    The same input gives the same bytes: every zip entry has the same fixed time (1980-01-01 00:00), Unix
    permissions 0600 and the same compression settings; photos are STORED (they are compressed already),
    text is DEFLATED at level 9; JSON keys keep a fixed order. Only the name of a teaching zip is random.

The FHIR resources (R4, https://hl7.org/fhir/R4/media.html; R4B's `Media` is the same)
    Bundle      resourceType "Bundle", type "collection", timestamp = exported_at; the DocumentReference
                first, then one entry per photo. Each photo entry's fullUrl is a urn:uuid derived from the
                photo's SHA-256 and its position, so it reveals nothing the photo itself does not; the
                document's from the reference (random for teaching).
    DocumentReference  id "record"; status "current"; type text "Photo consultation record"; subject = the
                NHS number as an identifier (left out for teaching); date = exported_at; one attachment,
                text/plain UTF-8, holding the description, the decision and, verbatim and marked as the
                patient's, their notes and captions. This is what files a view-then-delete description
                (no photo left) against the patient.
    Media       id "photo-N"; status "completed"; type = media-type "image"; subject = the NHS number as an
                identifier (system https://fhir.nhs.uk/Id/nhs-number), left out for teaching;
                createdDateTime = when the photo was received; width and height; note = the description
                (left out when there is none: FHIR strings may not be empty).
    Attachment  contentType, data (base64 of the image), size, hash (base64 of the SHA-1 of the image, as
                FHIR R4 defines `Attachment.hash`), title = the neutral file name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso
from bot.conversation.reference import REFERENCE_ALPHABET, REFERENCE_PREFIX
from bot.errors import UserFacingError
from bot.images.model import MIME_TYPES, ImageFormat
from bot.images.sniff import detect_kind
from bot.nhs_number import normalise_digits

RECORD = "record"
SECOND_OPINION = "second-opinion"
TEACHING = "teaching"
PURPOSES = (RECORD, SECOND_OPINION, TEACHING)
CONSENT_NEEDED = frozenset({SECOND_OPINION, TEACHING})

PACKAGE_MIME = "application/zip"
PACKAGE_FORMAT = "gp-photo-bot/record-package/1"
DECISIONS_FILE = "decisions.json"
DESCRIPTION_FILE = "description.txt"
FHIR_BUNDLE_FILE = "fhir-bundle.json"

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
MEDIA_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/media-type"

# The file extension for each type the photo pipeline may produce.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heif": "heif"}

_ENTRY_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_ENTRY_MODE = 0o100600  # a regular file, readable by its owner only
_UNIX = 3  # ZipInfo.create_system for Unix, whatever platform builds the zip
_FULL_URL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gp-photo-bot:record-package:photo")
_REFERENCE_PATTERN = re.compile(
    rf"{REFERENCE_PREFIX}-[{REFERENCE_ALPHABET}]{{4}}-[{REFERENCE_ALPHABET}]{{4}}", re.ASCII
)
_NHS_NUMBER_PATTERN = re.compile(r"[0-9]{10}", re.ASCII)


class PackageRefusedError(UserFacingError):
    """The package may not be built as asked; `text` tells the clinician why and what to do."""


@dataclass(frozen=True)
class PackagePhoto:
    data: bytes
    mime: str
    width: int
    height: int
    edits: tuple[str, ...]  # in the order applied, e.g. ("crop 120,80,900,700", "blur 10,10,60,40")
    taken_at: datetime  # when the bot received it


@dataclass(frozen=True)
class PackageDecision:
    kept: bool
    reason: str | None
    decided_by: str
    decided_at: datetime | None


@dataclass(frozen=True)
class PackageConsent:
    purpose: str  # "second-opinion" or "teaching"
    answer: str  # "yes" or "no"
    given_by: str  # "patient" or "legal-authority"
    answered_at: datetime


@dataclass(frozen=True)
class RecordPackageInput:
    reference: str  # e.g. "GP-7KQ2-M4XD"
    nhs_number: str | None  # 10 ASCII digits; may be None for teaching, and is never written there
    practice_name: str
    submitted_at: datetime
    description: str | None
    decision: PackageDecision | None
    consents: tuple[PackageConsent, ...]
    photos: tuple[PackagePhoto, ...]
    exported_by: str
    exported_at: datetime
    purpose: str  # "record", "second-opinion" or "teaching"
    notes: tuple[str, ...] = ()  # the patient's notes, verbatim (never written in a teaching package)
    captions: tuple[tuple[int, str], ...] = ()  # (photo number, caption), verbatim (likewise)


@dataclass(frozen=True)
class RecordPackage:
    file_name: str
    data: bytes
    mime: str = PACKAGE_MIME


def build_record_package(package: RecordPackageInput) -> RecordPackage:
    """The zip for `package.purpose`; `PackageRefusedError` if consent or de-identification forbids it."""
    _check_input(package)
    _check_policy(package)
    names = [f"photo-{number}.{EXTENSIONS[photo.mime]}" for number, photo in enumerate(package.photos, 1)]
    entries: dict[str, tuple[bytes, int]] = {
        DECISIONS_FILE: (_json_bytes(_decisions(package, names)), zipfile.ZIP_DEFLATED),
        DESCRIPTION_FILE: ((package.description or "").encode("utf-8"), zipfile.ZIP_DEFLATED),
        FHIR_BUNDLE_FILE: (_json_bytes(_fhir_bundle(package, names)), zipfile.ZIP_DEFLATED),
    }
    for name, photo in zip(names, package.photos, strict=True):
        entries[name] = (photo.data, zipfile.ZIP_STORED)
    return RecordPackage(file_name=_zip_name(package), data=_zip(entries))


# --- checks ----------------------------------------------------------------------------------------------


def _check_input(package: RecordPackageInput) -> None:
    """Programming errors: what the caller must never pass, whatever the clinician did."""
    if package.purpose not in PURPOSES:
        raise ValueError(f"unknown package purpose {package.purpose!r}")
    if not _REFERENCE_PATTERN.fullmatch(package.reference):
        raise ValueError("the reference is not of the form GP-XXXX-XXXX")
    if package.nhs_number is not None and not _NHS_NUMBER_PATTERN.fullmatch(package.nhs_number):
        raise ValueError("the NHS number must be ten ASCII digits")  # never echo it
    if package.nhs_number is None and package.purpose != TEACHING:
        raise ValueError(f"a {package.purpose} package needs the NHS number")
    moments = [package.submitted_at, package.exported_at]
    moments += [photo.taken_at for photo in package.photos]
    moments += [consent.answered_at for consent in package.consents]
    if package.decision is not None and package.decision.decided_at is not None:
        moments.append(package.decision.decided_at)
    if any(moment.utcoffset() is None for moment in moments):
        raise ValueError("every time in a package must carry its time zone")
    for number, photo in enumerate(package.photos, 1):
        if photo.mime not in EXTENSIONS:
            raise ValueError(f"photo {number} has a type a package does not hold: {photo.mime!r}")
        kind = detect_kind(photo.data)
        if not isinstance(kind, ImageFormat) or MIME_TYPES[kind] != photo.mime:
            raise ValueError(f"photo {number} is declared {photo.mime} but its bytes are not")
        if photo.width <= 0 or photo.height <= 0:
            raise ValueError(f"photo {number} has no size")


def _check_policy(package: RecordPackageInput) -> None:
    """Consent for sharing (rule 10) and nothing identifying in a teaching package's free text."""
    if package.purpose in CONSENT_NEEDED:
        answers = [consent for consent in package.consents if consent.purpose == package.purpose]
        latest = max(answers, key=lambda consent: consent.answered_at, default=None)
        if latest is None or latest.answer != "yes":
            raise PackageRefusedError(
                f"This submission has no consent for {package.purpose} (the latest answer must be yes),"
                " so it cannot be exported for that. Ask the patient for consent first."
            )
    if package.purpose == TEACHING:
        reason = package.decision.reason if package.decision is not None else None
        for label, text in (("description", package.description), ("decision's reason", reason)):
            if text is not None and _quotes_identifier(text, package):
                raise PackageRefusedError(
                    f"The {label} quotes the NHS number or the reference, and a teaching package must"
                    " not identify the patient. Remove it from the text, then export again."
                )


def _quotes_identifier(text: str, package: RecordPackageInput) -> bool:
    """Whether `text` contains the NHS number (in any digits, with any separators) or the reference."""
    if package.reference.casefold() in text.casefold():
        return True
    if package.nhs_number is None:
        return False
    digits_only = "".join(ch for ch in normalise_digits(text) if ch in "0123456789")
    return package.nhs_number in digits_only


# --- contents --------------------------------------------------------------------------------------------


def _decisions(package: RecordPackageInput, names: list[str]) -> dict[str, object]:
    teaching = package.purpose == TEACHING
    decisions: dict[str, object] = {"format": PACKAGE_FORMAT, "purpose": package.purpose}
    if not teaching:
        decisions["reference"] = package.reference
        decisions["practice"] = package.practice_name
        decisions["nhs_number"] = package.nhs_number
        decisions["patient_notes"] = list(package.notes)
        decisions["patient_captions"] = [
            {"photo": number, "caption": text} for number, text in package.captions
        ]
    decisions["submitted_at"] = iso(package.submitted_at)
    decision = package.decision
    decisions["decision"] = (
        None
        if decision is None
        else {
            "kept": decision.kept,
            "reason": decision.reason,
            "decided_by": decision.decided_by,
            "decided_at": None if decision.decided_at is None else iso(decision.decided_at),
        }
    )
    decisions["consents"] = [
        {
            "purpose": consent.purpose,
            "answer": consent.answer,
            "given_by": consent.given_by,
            "answered_at": iso(consent.answered_at),
        }
        for consent in package.consents
    ]
    decisions["description_file"] = DESCRIPTION_FILE if package.description else None
    decisions["photos"] = [
        {
            "file": name,
            "content_type": photo.mime,
            "width": photo.width,
            "height": photo.height,
            "size": len(photo.data),
            "sha256": hashlib.sha256(photo.data).hexdigest(),
            "received_at": iso(photo.taken_at),
            "edits": list(photo.edits),
        }
        for name, photo in zip(names, package.photos, strict=True)
    ]
    decisions["exported_by"] = package.exported_by
    decisions["exported_at"] = iso(package.exported_at)
    return decisions


def _fhir_bundle(package: RecordPackageInput, names: list[str]) -> dict[str, object]:
    bundle: dict[str, object] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso(package.exported_at),
    }
    entries = [{"fullUrl": _document_url(package), "resource": _document(package)}]
    entries += [
        {"fullUrl": _full_url(photo, position), "resource": _media(package, photo, name)}
        for position, (name, photo) in enumerate(zip(names, package.photos, strict=True), 1)
    ]
    bundle["entry"] = entries
    return bundle


def _subject(package: RecordPackageInput) -> dict[str, object] | None:
    if package.purpose == TEACHING or package.nhs_number is None:
        return None
    return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": package.nhs_number}}


def document_text(package: RecordPackageInput) -> str:
    """The written record, as the DocumentReference carries it: the clinician's words, then the patient's."""
    teaching = package.purpose == TEACHING
    lines = [] if teaching else [f"Reference: {package.reference}"]
    lines += ["Clinician's description:", package.description or "(none written)"]
    decision = package.decision
    if decision is not None:
        verdict = "kept for the record" if decision.kept else "not kept"
        lines.append(f"Decision: {verdict}" + (f"; reason: {decision.reason}" if decision.reason else ""))
    if not teaching:
        lines.append("Patient-supplied text, verbatim:")
        lines += [f"Note {number}: {note}" for number, note in enumerate(package.notes, 1)]
        lines += [f"Caption of photo {number}: {caption}" for number, caption in package.captions]
        if not package.notes and not package.captions:
            lines.append("(none)")
    return "\n".join(lines) + "\n"


def _document(package: RecordPackageInput) -> dict[str, object]:
    document: dict[str, object] = {
        "resourceType": "DocumentReference",
        "id": "record",
        "status": "current",
        "type": {"text": "Photo consultation record"},
    }
    subject = _subject(package)
    if subject is not None:
        document["subject"] = subject
    document["date"] = iso(package.exported_at)
    text = document_text(package).encode("utf-8")
    document["content"] = [
        {
            "attachment": {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(text).decode("ascii"),
                "size": len(text),
                "title": "record.txt",
            }
        }
    ]
    return document


def _document_url(package: RecordPackageInput) -> str:
    named = "document/teaching" if package.purpose == TEACHING else f"document/{package.reference}"
    return f"urn:uuid:{uuid.uuid5(_FULL_URL_NAMESPACE, named)}"


def _media(package: RecordPackageInput, photo: PackagePhoto, name: str) -> dict[str, object]:
    media: dict[str, object] = {
        "resourceType": "Media",
        "id": name.rpartition(".")[0],
        "status": "completed",
        "type": {"coding": [{"system": MEDIA_TYPE_SYSTEM, "code": "image", "display": "Image"}]},
    }
    subject = _subject(package)
    if subject is not None:
        media["subject"] = subject
    media["createdDateTime"] = iso(photo.taken_at)
    media["width"] = photo.width
    media["height"] = photo.height
    media["content"] = {
        "contentType": photo.mime,
        "data": base64.b64encode(photo.data).decode("ascii"),
        "size": len(photo.data),
        "hash": base64.b64encode(hashlib.sha1(photo.data).digest()).decode("ascii"),  # noqa: S324 (FHIR R4 defines Attachment.hash as SHA-1)
        "title": name,
    }
    if package.description:
        media["note"] = [{"text": package.description}]
    return media


def _full_url(photo: PackagePhoto, position: int) -> str:
    digest = hashlib.sha256(photo.data).hexdigest()
    return f"urn:uuid:{uuid.uuid5(_FULL_URL_NAMESPACE, f'{digest}/{position}')}"


# --- the zip ---------------------------------------------------------------------------------------------


def _zip_name(package: RecordPackageInput) -> str:
    if package.purpose == TEACHING:
        return f"{TEACHING}-{secrets.token_hex(4)}.zip"
    return f"{package.purpose}-{package.reference}.zip"


def _json_bytes(value: dict[str, object]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _zip(entries: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            data, compression = entries[name]
            info = zipfile.ZipInfo(name, date_time=_ENTRY_TIME)
            info.create_system = _UNIX
            info.external_attr = _ENTRY_MODE << 16
            info.compress_type = compression
            archive.writestr(info, data, compresslevel=9 if compression == zipfile.ZIP_DEFLATED else None)
    return buffer.getvalue()
