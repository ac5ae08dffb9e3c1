"""The exported record package: neutral names, the description and decisions, and a FHIR Bundle that parses.

The FHIR resources are parsed with `fhir.resources` (R4B, whose `Media` is the same as R4's), a test-only
dependency. Every image is generated here with Pillow; the NHS number is a synthetic one from the test range
999, chosen to share no digit with the photo numbers or the reference, so the name checks below are exact.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import random
import re
import zipfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.media import Media
from PIL import Image

from bot.record_package import (
    PackageConsent,
    PackageDecision,
    PackagePhoto,
    PackageRefusedError,
    RecordPackageInput,
    build_record_package,
)

NHS_NUMBER = "9995005689"  # test range, valid check digit, digits 0 5 6 8 9 only
NHS_FORMATTED = "999 500 5689"
REFERENCE = "GP-7KQ2-M4XD"  # its digits (7 2 4) are not in the NHS number either
PRACTICE = "Riverside Surgery"
DESCRIPTION = "Raised red rash on the left forearm, 3 cm across, itchy for two weeks. Éczema? — no 湿疹 🙂"
AREA_WORDS = ("rash", "forearm", "left", "arm", "skin", "eczema", "lesion")
T0 = datetime(2025, 3, 4, 9, 15, 30, tzinfo=UTC)
NOTES = ("@room it's on my <b>left</b> side", "three weeks now")
CAPTIONS = ((2, "the itchy bit, close up"),)
NEUTRAL_ENTRY = re.compile(
    r"photo-[1-9][0-9]*\.(jpg|png|webp)|decisions\.json|description\.txt|fhir-bundle\.json"
)


def make_image(kind: str, width: int, height: int) -> bytes:
    """A generated noisy picture in the Pillow format `kind` ("JPEG", "PNG", "WEBP"), the same every time."""
    rng = random.Random(f"{kind} {width}x{height}")  # noqa: S311 (reproducible test pixels, not a secret)
    picture = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    picture.save(buffer, format=kind)
    return buffer.getvalue()


def photos() -> tuple[PackagePhoto, ...]:
    return (
        PackagePhoto(make_image("JPEG", 64, 48), "image/jpeg", 64, 48, ("crop 4,4,60,44",), T0),
        PackagePhoto(make_image("PNG", 40, 30), "image/png", 40, 30, (), T0 + timedelta(seconds=20)),
        PackagePhoto(
            make_image("WEBP", 32, 32),
            "image/webp",
            32,
            32,
            ("rotate 90", "blur 2,2,10,10"),
            T0 + timedelta(minutes=1),
        ),
    )


def package_input(purpose: str = "record", /, **changes: object) -> RecordPackageInput:
    consents = (
        PackageConsent("second-opinion", "yes", "patient", T0 + timedelta(hours=1)),
        PackageConsent("teaching", "yes", "legal-authority", T0 + timedelta(hours=2)),
    )
    base = RecordPackageInput(
        reference=REFERENCE,
        nhs_number=NHS_NUMBER,
        practice_name=PRACTICE,
        submitted_at=T0 + timedelta(minutes=2),
        description=DESCRIPTION,
        decision=PackageDecision(
            True, "needed to compare at review", "@dr.khan:practice.example", T0 + timedelta(hours=3)
        ),
        consents=consents,
        photos=photos(),
        exported_by="@dr.khan:practice.example",
        exported_at=T0 + timedelta(days=1),
        purpose=purpose,
        notes=NOTES,
        captions=CAPTIONS,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def media_of(data: bytes) -> list[Media]:
    bundle = Bundle.model_validate_json(entries(data)["fhir-bundle.json"])
    assert bundle.type == "collection"
    resources = [entry.resource for entry in bundle.entry or []]
    assert isinstance(resources[0], DocumentReference)
    assert all(isinstance(resource, Media) for resource in resources[1:])
    return [resource for resource in resources if isinstance(resource, Media)]


def document_of(data: bytes) -> DocumentReference:
    bundle = Bundle.model_validate_json(entries(data)["fhir-bundle.json"])
    document = (bundle.entry or [])[0].resource
    assert isinstance(document, DocumentReference)
    return document


def document_text(document: DocumentReference) -> str:
    attachment = document.content[0].attachment
    assert attachment.contentType == "text/plain; charset=utf-8" and attachment.data is not None
    return attachment.data.decode("utf-8")


def test_zip_holds_the_photos_unchanged_under_numbered_names_beside_the_three_documents() -> None:
    """The zip lists decisions, description, FHIR bundle and each photo, byte for byte, named by its type."""
    package = build_record_package(package_input())
    files = entries(package.data)
    assert list(files) == sorted(files)
    assert sorted(files) == [
        "decisions.json",
        "description.txt",
        "fhir-bundle.json",
        "photo-1.jpg",
        "photo-2.png",
        "photo-3.webp",
    ]
    assert [files["photo-1.jpg"], files["photo-2.png"], files["photo-3.webp"]] == [p.data for p in photos()]
    assert package.mime == "application/zip"
    assert package.file_name == f"record-{REFERENCE}.zip"


def test_no_name_reveals_the_patient_or_the_body_area() -> None:
    """No file name, inside or of the zip, carries a digit of the NHS number or a word about the body."""
    for purpose in ("record", "second-opinion", "teaching"):
        package = build_record_package(package_input(purpose))
        names = [*entries(package.data), package.file_name]
        assert all(NEUTRAL_ENTRY.fullmatch(name) for name in entries(package.data))
        for name in names:
            fixed_part = re.sub(r"^teaching-[0-9a-f]{8}\.zip$", "teaching-.zip", name)  # random hex aside
            assert not set(fixed_part) & set(NHS_NUMBER), name
            assert not any(word in name.lower() for word in AREA_WORDS), name


def test_every_media_parses_as_fhir_and_carries_the_image_the_nhs_number_and_the_description() -> None:
    """Each photo becomes a FHIR Media whose decoded data is the image, with a matching SHA-1 and the patient."""
    media = media_of(build_record_package(package_input()).data)
    assert len(media) == 3
    for number, (resource, photo) in enumerate(zip(media, photos(), strict=True), 1):
        assert resource.status == "completed"
        assert resource.type is not None and resource.type.coding is not None
        coding = resource.type.coding[0]
        assert (coding.system, coding.code) == ("http://terminology.hl7.org/CodeSystem/media-type", "image")
        assert resource.subject is not None and resource.subject.identifier is not None
        assert resource.subject.identifier.system == "https://fhir.nhs.uk/Id/nhs-number"
        assert resource.subject.identifier.value == NHS_NUMBER
        assert resource.createdDateTime == photo.taken_at
        assert (resource.width, resource.height) == (photo.width, photo.height)
        content = resource.content
        assert content.contentType == photo.mime
        assert content.data == photo.data  # the library decodes base64Binary to bytes
        assert content.size == len(photo.data)
        assert content.hash == hashlib.sha1(photo.data).digest()  # noqa: S324 (FHIR R4's Attachment.hash)
        assert content.title == f"photo-{number}.{photo.mime.rpartition('/')[2].replace('jpeg', 'jpg')}"
        assert resource.note is not None and resource.note[0].text == DESCRIPTION


def test_fhir_json_carries_base64_data_and_hash_exactly() -> None:
    """The raw JSON's data and hash fields are standard base64 of the image and of its SHA-1."""
    bundle = json.loads(entries(build_record_package(package_input()).data)["fhir-bundle.json"])
    for entry, photo in zip(bundle["entry"][1:], photos(), strict=True):
        content = entry["resource"]["content"]
        assert base64.b64decode(content["data"], validate=True) == photo.data
        assert base64.b64decode(content["hash"], validate=True) == hashlib.sha1(photo.data).digest()  # noqa: S324
        assert entry["fullUrl"].startswith("urn:uuid:")
    assert len({entry["fullUrl"] for entry in bundle["entry"]}) == 4


def test_teaching_package_identifies_no_one_anywhere() -> None:
    """A teaching package holds no NHS number, reference or practice name in any file, even if given them."""
    package = build_record_package(package_input("teaching"))
    assert re.fullmatch(r"teaching-[0-9a-f]{8}\.zip", package.file_name)
    identifying = [NHS_NUMBER, NHS_FORMATTED, REFERENCE, PRACTICE, "nhs-number"]
    texts = {name: data for name, data in entries(package.data).items() if not name.startswith("photo-")}
    for name, data in texts.items():
        for secret in identifying:
            assert secret.encode() not in data, (name, secret)
    for secret in identifying:
        assert secret.encode() not in package.data
    assert all(resource.subject is None for resource in media_of(package.data))
    assert document_of(package.data).subject is None
    for words in (*NOTES, CAPTIONS[0][1]):  # the patient's own words may identify them
        assert words.encode() not in package.data
        assert words not in document_text(document_of(package.data))
    decisions = json.loads(texts["decisions.json"])
    assert decisions["purpose"] == "teaching"
    assert decisions["consents"][1] == {
        "purpose": "teaching",
        "answer": "yes",
        "given_by": "legal-authority",
        "answered_at": (T0 + timedelta(hours=2)).isoformat(timespec="milliseconds"),
    }


def test_teaching_zip_names_are_random_but_the_contents_are_the_same() -> None:
    """Two exports of the same teaching package get unrelated names and identical bytes."""
    first = build_record_package(package_input("teaching", nhs_number=None))
    second = build_record_package(package_input("teaching", nhs_number=None))
    assert first.file_name != second.file_name
    assert first.data == second.data


def test_same_input_gives_the_same_bytes() -> None:
    """Building the same record package twice gives byte-identical zips with fixed entry times."""
    first = build_record_package(package_input())
    second = build_record_package(package_input())
    assert first == second
    later = build_record_package(package_input(exported_at=T0 + timedelta(days=2)))
    assert later.data != first.data
    with zipfile.ZipFile(io.BytesIO(first.data)) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    stored = {info.filename for info in infos if info.compress_type == zipfile.ZIP_STORED}
    assert stored == {"photo-1.jpg", "photo-2.png", "photo-3.webp"}


def test_description_round_trips_as_utf8() -> None:
    """The description reads back exactly, accents, CJK, emoji and line breaks included."""
    text = DESCRIPTION + "\nSecond line: £5 coin for scale.\n"
    package = build_record_package(package_input(description=text))
    assert entries(package.data)["description.txt"].decode("utf-8") == text
    assert all(m.note is not None and m.note[0].text == text for m in media_of(package.data))


def test_package_without_description_has_an_empty_text_and_no_note() -> None:
    """With no description written, description.txt is empty and no Media carries a note."""
    package = build_record_package(package_input(description=None))
    assert entries(package.data)["description.txt"] == b""
    assert all(resource.note is None for resource in media_of(package.data))
    assert json.loads(entries(package.data)["decisions.json"])["description_file"] is None


def test_decisions_file_records_what_was_decided_consented_edited_and_exported() -> None:
    """decisions.json holds the reference, purpose, decision with reason, consents, edits and the export."""
    decisions = json.loads(entries(build_record_package(package_input()).data)["decisions.json"])
    assert decisions["reference"] == REFERENCE
    assert decisions["purpose"] == "record"
    assert decisions["decision"] == {
        "kept": True,
        "reason": "needed to compare at review",
        "decided_by": "@dr.khan:practice.example",
        "decided_at": "2025-03-04T12:15:30.000+00:00",
    }
    assert [c["purpose"] for c in decisions["consents"]] == ["second-opinion", "teaching"]
    assert [p["edits"] for p in decisions["photos"]] == [
        ["crop 4,4,60,44"],
        [],
        ["rotate 90", "blur 2,2,10,10"],
    ]
    assert [p["sha256"] for p in decisions["photos"]] == [
        hashlib.sha256(p.data).hexdigest() for p in photos()
    ]
    assert decisions["exported_by"] == "@dr.khan:practice.example"
    assert decisions["exported_at"] == "2025-03-05T09:15:30.000+00:00"
    assert decisions["nhs_number"] == NHS_NUMBER
    assert decisions["patient_notes"] == list(NOTES)
    assert decisions["patient_captions"] == [{"photo": 2, "caption": "the itchy bit, close up"}]


def test_the_document_files_the_description_and_the_patients_words_against_the_patient() -> None:
    """The DocumentReference has the NHS number as subject and carries the description, the decision and
    the patient's notes and captions verbatim; every resource in the Bundle has the patient as subject."""
    data = build_record_package(package_input()).data
    document = document_of(data)
    assert document.status == "current"
    assert document.subject is not None and document.subject.identifier is not None
    assert document.subject.identifier.value == NHS_NUMBER
    text = document_text(document)
    assert DESCRIPTION in text and "needed to compare at review" in text
    assert f"Note 1: {NOTES[0]}" in text and f"Note 2: {NOTES[1]}" in text
    assert "Caption of photo 2: the itchy bit, close up" in text
    for media in media_of(data):
        assert media.subject is not None and media.subject.identifier is not None
        assert media.subject.identifier.value == NHS_NUMBER


def test_times_in_other_zones_are_written_in_utc() -> None:
    """A time given in another zone is written as the same instant in UTC."""
    plus_two = timezone(timedelta(hours=2))
    package = build_record_package(package_input(exported_at=datetime(2025, 3, 5, 11, 0, tzinfo=plus_two)))
    assert (
        json.loads(entries(package.data)["decisions.json"])["exported_at"] == "2025-03-05T09:00:00.000+00:00"
    )


@pytest.mark.parametrize(
    "consents",
    [
        (),
        (PackageConsent("second-opinion", "no", "patient", T0),),
        (
            PackageConsent("second-opinion", "yes", "patient", T0),
            PackageConsent("second-opinion", "no", "patient", T0 + timedelta(hours=1)),
        ),
        (PackageConsent("teaching", "yes", "patient", T0),),
    ],
)
def test_second_opinion_needs_the_latest_answer_to_be_yes(consents: tuple[PackageConsent, ...]) -> None:
    """A second-opinion package is refused, with a reason, unless the latest second-opinion answer is yes."""
    with pytest.raises(PackageRefusedError, match="no consent for second-opinion"):
        build_record_package(package_input("second-opinion", consents=consents))


def test_second_opinion_with_consent_names_the_reference() -> None:
    """With consent, a second-opinion package is named by the reference and identifies the patient."""
    later_yes = (
        PackageConsent("second-opinion", "no", "patient", T0),
        PackageConsent("second-opinion", "yes", "patient", T0 + timedelta(hours=1)),
    )
    package = build_record_package(package_input("second-opinion", consents=later_yes))
    assert package.file_name == f"second-opinion-{REFERENCE}.zip"
    assert all(m.subject is not None and m.subject.identifier is not None for m in media_of(package.data))


def test_teaching_needs_consent() -> None:
    """A teaching package is refused when the patient said no to teaching."""
    refused = (PackageConsent("teaching", "no", "patient", T0),)
    with pytest.raises(PackageRefusedError, match="no consent for teaching"):
        build_record_package(package_input("teaching", consents=refused))


@pytest.mark.parametrize("quoted", [NHS_FORMATTED, "999-500-5689", "٩٩٩٥٠٠٥٦٨٩", REFERENCE.lower()])
def test_teaching_refuses_free_text_that_quotes_an_identifier(quoted: str) -> None:
    """A teaching package is refused while the description quotes the NHS number or the reference."""
    with pytest.raises(PackageRefusedError, match="description quotes"):
        build_record_package(package_input("teaching", description=f"Patient {quoted}: rash"))


def test_package_without_photos_still_files_the_description_against_the_patient() -> None:
    """A description-only package (view then delete: the photo was destroyed) parses as a FHIR Bundle whose
    one DocumentReference carries the NHS number as subject, the description and the patient's notes."""
    package = build_record_package(package_input(photos=()))
    assert sorted(entries(package.data)) == ["decisions.json", "description.txt", "fhir-bundle.json"]
    assert media_of(package.data) == []
    document = document_of(package.data)
    assert document.subject is not None and document.subject.identifier is not None
    assert document.subject.identifier.value == NHS_NUMBER
    assert DESCRIPTION in document_text(document) and NOTES[0] in document_text(document)


@pytest.mark.parametrize(
    "changes",
    [
        {"nhs_number": None},
        {"nhs_number": "999 500 5689"},
        {"purpose": "newsletter"},
        {"reference": "../../etc/passwd"},
        {"exported_at": datetime(2025, 3, 5, 9, 0)},  # a naive time
        {"photos": (PackagePhoto(make_image("PNG", 8, 8), "image/jpeg", 8, 8, (), T0),)},
        {"photos": (PackagePhoto(b"%PDF-1.7 not an image", "image/jpeg", 8, 8, (), T0),)},
    ],
)
def test_malformed_input_is_refused_as_a_programming_error(changes: dict[str, object]) -> None:
    """Input a caller must never pass (a missing NHS number, a mislabelled photo, a naive time) raises."""
    with pytest.raises(ValueError, match=r"."):
        build_record_package(package_input(**changes))
