"""The waiting-room poster: the link it prints, the QR code a phone scans, and an A4 page that prints."""

from __future__ import annotations

import io
import re
from urllib.parse import unquote

import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from pypdf import PdfReader

from bot.poster import (
    DEFAULT_TEXTS,
    WEB_CHAT_TEXTS,
    Box,
    InvalidUserIdError,
    Poster,
    PosterLayout,
    PosterTextError,
    PosterTexts,
    matrix_to_link,
    render_poster,
    texts_for_server,
)

BOT = "@photobot:riverside-gp.example.org"
LINK = "https://matrix.to/#/@photobot:riverside-gp.example.org"
PRACTICE = "Riverside Medical Practice"
LONG_NAME = (
    "The Old Mill and Riverside Medical Practice, Family Health Partnership "
    "and Community Minor Injuries Unit at St Bartholomew's Road, Upper Wickham"
)
A4_POINTS = (595.0, 842.0)


@pytest.fixture(scope="module")
def poster() -> Poster:
    return render_poster(PRACTICE, BOT)


def _png(poster: Poster) -> Image.Image:
    image = Image.open(io.BytesIO(poster.png), formats=["PNG"])
    image.load()
    return image


def _scan(image: Image.Image) -> list[str]:
    return [
        code.text for code in zxingcpp.read_barcodes(image) if code.format == zxingcpp.BarcodeFormat.QRCode
    ]


def _is_blank(image: Image.Image, box: Box) -> bool:
    return image.crop((box.left, box.top, box.right, box.bottom)).getextrema() == (255, 255)


def _darkest(image: Image.Image, box: Box) -> int:
    low, _ = image.crop((box.left, box.top, box.right, box.bottom)).getextrema()
    assert isinstance(low, int)
    return low


def _parts(layout: PosterLayout) -> list[Box]:
    return [
        layout.practice_name,
        layout.heading,
        layout.qr,
        layout.link,
        *layout.steps,
        layout.privacy,
        layout.footer,
    ]


def _pdf_page(pdf: bytes) -> tuple[list[float], str]:
    """The single page's MediaBox and its text, as a PDF text tool extracts it."""
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    return [float(v) for v in page.mediabox], page.extract_text()


def _pdf_squares(pdf: bytes, pixels_per_point: float = 2.0) -> Image.Image:
    """The filled rectangles drawn on the page (the QR code's modules), painted black on white."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    width, height = float(page.mediabox.width), float(page.mediabox.height)
    image = Image.new("L", (round(width * pixels_per_point), round(height * pixels_per_point)), 255)
    draw = ImageDraw.Draw(image)
    operations = page.get_contents().operations  # type: ignore[union-attr]
    for operands, operator in operations:
        if operator == b"re":
            x, y, w, h = (float(v) * pixels_per_point for v in operands)
            top = image.height - y - h if h > 0 else image.height - y  # PDF's y axis points up
            draw.rectangle((x, top, x + w - 1, top + abs(h) - 1), fill=0)
    return image


# --- the link ----------------------------------------------------------------------------------------------


def test_a_plain_user_id_gives_a_readable_matrix_to_link() -> None:
    """An ordinary bot id becomes a matrix.to link a person can read and type from the poster."""
    assert matrix_to_link(BOT) == LINK


@pytest.mark.parametrize(
    ("user_id", "link"),
    [
        ("@gp/photos:example.org", "https://matrix.to/#/@gp%2Fphotos:example.org"),
        ("@Photo#Bot?x:example.org", "https://matrix.to/#/@Photo%23Bot%3Fx:example.org"),
        ("@bot+gp=1:example.org", "https://matrix.to/#/@bot%2Bgp%3D1:example.org"),
        ("@bot:[2001:db8::1]:8448", "https://matrix.to/#/@bot:%5B2001:db8::1%5D:8448"),
        ("@100%bot:example.org", "https://matrix.to/#/@100%25bot:example.org"),
    ],
)
def test_characters_that_matrix_to_would_misread_are_percent_encoded(user_id: str, link: str) -> None:
    """A slash, question mark, hash, percent or bracket in the id is percent-encoded so matrix.to opens this user."""
    assert matrix_to_link(user_id) == link


@given(
    localpart=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
        min_size=1,
        max_size=40,
    ),
    server=st.sampled_from(["example.org", "gp.example.nhs.uk:8448", "[2001:db8::1]:8448", "192.0.2.7"]),
)
def test_every_valid_user_id_round_trips_through_its_link(localpart: str, server: str) -> None:
    """Any id the Matrix spec allows decodes back from its link unchanged, with nothing left for matrix.to to split on."""
    user_id = f"@{localpart}:{server}"
    link = matrix_to_link(user_id)
    identifier = link.removeprefix("https://matrix.to/#/")
    assert unquote(identifier) == user_id
    assert not set(identifier) & set("/?#[] ")
    assert re.fullmatch(r"(?:[A-Za-z0-9\-._~:@]|%[0-9A-F]{2})+", identifier)


@pytest.mark.parametrize(
    "user_id",
    [
        "",
        "photobot:example.org",
        "@photobot",
        "@photobot:",
        "@:example.org",
        "@photo bot:example.org",
        "@phötobot:example.org",
        "@photobot:exa mple.org",
        "@photobot:example.org:123456",
        "@photobot:[::1",
        "@photobot:example.org\n",
        "!room:example.org",
        "#waiting-room:example.org",
        "@" + "a" * 250 + ":example.org",
    ],
)
def test_text_that_is_not_a_user_id_is_refused(user_id: str) -> None:
    """A room id, an alias, a typo or an over-long id is refused rather than printed as a dead link."""
    with pytest.raises(InvalidUserIdError):
        matrix_to_link(user_id)
    with pytest.raises(InvalidUserIdError):
        render_poster(PRACTICE, user_id)


# --- the page ----------------------------------------------------------------------------------------------


def test_the_png_is_a4_at_150_dpi(poster: Poster) -> None:
    """At the default 150 dpi the poster is 1240 x 1754 pixels and says so, so it prints as A4."""
    image = _png(poster)
    assert image.size == (1240, 1754)
    assert image.info["dpi"] == pytest.approx((150, 150), abs=0.05)


@pytest.mark.parametrize("dpi", [72, 300])
def test_the_png_keeps_a4_proportions_at_any_dpi(dpi: int) -> None:
    """At another resolution the page is still A4: 210 x 297 mm at that many dots per inch."""
    image = _png(render_poster(PRACTICE, BOT, dpi=dpi))
    width_mm, height_mm = (pixels / dpi * 25.4 for pixels in image.size)
    assert width_mm == pytest.approx(210, abs=0.5)
    assert height_mm == pytest.approx(297, abs=0.5)
    assert _scan(image) == [matrix_to_link(BOT)]


@pytest.mark.parametrize("dpi", [0, 71, 601])
def test_a_resolution_outside_the_printable_range_is_refused(dpi: int) -> None:
    """A dpi too low to scan or too high to handle is refused."""
    with pytest.raises(ValueError, match="dpi"):
        render_poster(PRACTICE, BOT, dpi=dpi)


def test_the_qr_code_opens_a_chat_with_the_bot(poster: Poster) -> None:
    """Scanning the poster finds exactly one QR code, with strong error correction, holding the bot's link."""
    codes = zxingcpp.read_barcodes(_png(poster))
    assert [code.text for code in codes] == [LINK]
    assert codes[0].format == zxingcpp.BarcodeFormat.QRCode
    assert codes[0].ec_level in {"M", "Q"}


def test_with_the_web_chat_the_qr_code_opens_the_page_and_says_no_app_is_needed() -> None:
    """A practice with the web chat prints a QR code (and written link) holding the page's address, and
    steps that need no app."""
    url = "https://photos.riverside-surgery.example/"
    poster = render_poster(PRACTICE, BOT, texts=WEB_CHAT_TEXTS, web_chat_url=url)
    assert _scan(_png(poster)) == [url]
    _, text = _pdf_page(poster.pdf)
    flat = " ".join(text.split())
    assert url in flat
    assert "No app or account is needed." in flat
    assert "Element" not in flat


def test_the_qr_code_has_a_clear_quiet_zone(poster: Poster) -> None:
    """Four modules of white surround the QR symbol, and the symbol itself is black on white."""
    image = _png(poster)
    qr, zone = poster.layout.qr, 4 * poster.layout.qr_module_px
    assert zone >= 4 * 2
    for strip in (
        Box(qr.left, qr.top, qr.right, qr.top + zone),
        Box(qr.left, qr.bottom - zone, qr.right, qr.bottom),
        Box(qr.left, qr.top, qr.left + zone, qr.bottom),
        Box(qr.right - zone, qr.top, qr.right, qr.bottom),
    ):
        assert _is_blank(image, strip)
    assert _darkest(image, qr) == 0


def test_the_link_is_written_out_under_the_qr_code(poster: Poster) -> None:
    """The link is printed just below the QR code, centred, for anyone who would rather type it."""
    image = _png(poster)
    layout = poster.layout
    assert layout.qr.bottom <= layout.link.top < layout.qr.bottom + 4 * layout.qr_module_px
    assert abs((layout.link.left + layout.link.right) - (layout.qr.left + layout.qr.right)) <= 4
    assert _darkest(image, layout.link) < 64


def test_every_part_is_dark_on_white_inside_the_margins_without_overlapping(poster: Poster) -> None:
    """Each part is printed at least 10 mm from the paper's edge, in dark ink, and no part covers another."""
    image = _png(poster)
    layout = poster.layout
    ten_mm = round(10 / 25.4 * 150)
    assert layout.margin.left >= ten_mm and layout.margin.top >= ten_mm
    assert layout.page.right - layout.margin.right >= ten_mm
    assert layout.page.bottom - layout.margin.bottom >= ten_mm
    parts = _parts(layout)
    assert len(layout.steps) == len(DEFAULT_TEXTS.steps) == 3
    for index, part in enumerate(parts):
        assert layout.margin.contains(part)
        assert _darkest(image, part) < 64
        assert not any(part.overlaps(other) for other in parts[index + 1 :])
    assert image.getpixel((0, 0)) == image.getpixel((image.width - 1, image.height - 1)) == 255
    assert layout.text_scale == 1.0


def test_the_practice_name_is_large_and_at_the_top(poster: Poster) -> None:
    """The practice name is the first and largest text on the page, drawn as written."""
    layout = poster.layout
    assert " ".join(layout.practice_name_lines) == PRACTICE
    assert layout.practice_name.top == min(part.top for part in _parts(layout))
    line_height = (layout.practice_name.bottom - layout.practice_name.top) / len(layout.practice_name_lines)
    assert line_height > (layout.heading.bottom - layout.heading.top) * 1.3
    assert _darkest(_png(poster), layout.practice_name) < 64


# --- the PDF -----------------------------------------------------------------------------------------------


def test_the_pdf_is_one_a4_page(poster: Poster) -> None:
    """The PDF is a single page whose size is A4 (595 x 842 points), so it prints without scaling."""
    assert poster.pdf.startswith(b"%PDF-")
    media_box, _ = _pdf_page(poster.pdf)
    assert media_box[:2] == [0.0, 0.0]
    assert media_box[2:] == pytest.approx(A4_POINTS, abs=1.0)


def test_the_pdf_has_selectable_text_in_an_embedded_font_with_welsh_letters() -> None:
    """A PDF text tool reads "Meddygfa Tŷ Gwyn" and every step from the page; the font travels inside it."""
    poster = render_poster("Meddygfa Tŷ Gwyn", BOT)
    _, text = _pdf_page(poster.pdf)
    assert "Meddygfa Tŷ Gwyn" in text
    assert DEFAULT_TEXTS.heading in text
    assert LINK.replace("riverside-gp.example.org", "") in text
    assert "emergencies" in text
    page = PdfReader(io.BytesIO(poster.pdf)).pages[0]
    assert len(page.images) == 0, "vector text and shapes, no picture of the page"
    assert "/XObject" not in page["/Resources"]  # type: ignore[operator]
    fonts = page["/Resources"]["/Font"]  # type: ignore[index]
    descriptors = [
        font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"] for font in fonts.values()
    ]
    assert descriptors and all("/FontFile2" in d.get_object() for d in descriptors)


def test_the_pdf_qr_code_is_drawn_as_squares_and_scans(poster: Poster) -> None:
    """The PDF's QR code, painted from its vector squares alone, scans to the bot's link."""
    assert _scan(_pdf_squares(poster.pdf)) == [LINK]


def test_the_practice_phone_number_and_opening_times_are_printed_when_set() -> None:
    """With a phone number and opening times configured, both are on the poster; without them, neither line is."""
    with_contact = render_poster(PRACTICE, BOT, phone="01632 960 123", opening_times="Mon-Fri 8am-6.30pm")
    _, text = _pdf_page(with_contact.pdf)
    assert "Phone: 01632 960 123" in text
    assert "Open: Mon-Fri 8am-6.30pm" in text
    assert _scan(_png(with_contact)) == [LINK]
    _, plain = _pdf_page(render_poster(PRACTICE, BOT).pdf)
    assert "Phone:" not in plain
    assert "Open:" not in plain


def test_the_same_inputs_give_the_same_files() -> None:
    """Rendering twice gives byte-identical files: no dates or other run-to-run noise is embedded."""
    first, second = render_poster(PRACTICE, BOT), render_poster(PRACTICE, BOT)
    assert (first.png, first.pdf) == (second.png, second.pdf)


# --- awkward practice names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        LONG_NAME,
        ("A" * 10 + " ") * 13 + "A" * 7,  # the longest allowed: 150 characters
        "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogochhealthcentre",  # one word, too wide
    ],
)
def test_a_long_practice_name_still_fits_on_the_page(name: str) -> None:
    """A long practice name wraps or shrinks, stays inside the margins, and the QR code still scans."""
    poster = render_poster(name, BOT)
    image = _png(poster)
    layout = poster.layout
    assert "".join(layout.practice_name_lines).replace(" ", "") == name.replace(" ", "")
    for part in _parts(layout):
        assert layout.margin.contains(part)
    assert _darkest(image, layout.practice_name) < 64
    assert _scan(image) == [LINK]


def test_a_practice_name_longer_than_the_poster_takes_is_refused() -> None:
    """A practice name over 150 characters is refused with a message rather than printed unreadably small."""
    with pytest.raises(PosterTextError, match="150"):
        render_poster("A" * 151, BOT)


@pytest.mark.parametrize("name", ["", "   ", "\n\t"])
def test_an_empty_practice_name_is_refused(name: str) -> None:
    """A poster with no practice name is refused."""
    with pytest.raises(PosterTextError, match="empty"):
        render_poster(name, BOT)


def test_stray_whitespace_in_the_practice_name_is_tidied() -> None:
    """Line breaks and doubled spaces in the configured name do not show on the poster."""
    poster = render_poster("  Riverside\n Medical   Practice ", BOT)
    assert " ".join(poster.layout.practice_name_lines) == PRACTICE


def test_ascii_punctuation_in_a_name_is_drawn_exactly() -> None:
    """Apostrophes, ampersands, brackets and the like are drawn as written."""
    name = "St John's & St Mary's (Group) Practice: 1-2, The Green! @#%*+=/?;\"[]{}<>|~^_`$"
    poster = render_poster(name, BOT)
    assert " ".join(poster.layout.practice_name_lines) == name


def test_welsh_and_accented_names_are_drawn_exactly() -> None:
    """'Meddygfa Tŷ Gwyn' and 'Cabinet Médical Ørsted-Łódź' are drawn as written, not with base letters."""
    for name in ("Meddygfa Tŷ Gwyn", "Cabinet Médical Ørsted-Łódź"):
        poster = render_poster(name, BOT)
        assert " ".join(poster.layout.practice_name_lines) == name
        assert _scan(_png(poster)) == [LINK]


def test_a_letter_the_font_lacks_falls_back_to_its_base_letter() -> None:
    """A stylised letter the font lacks (mathematical bold A) is drawn as its plain letter, not an empty box."""
    poster = render_poster("\U0001d400lder Surgery", BOT)
    assert " ".join(poster.layout.practice_name_lines) == "Alder Surgery"


def test_a_name_the_font_cannot_draw_is_refused_with_a_hint() -> None:
    """A name in a script the font lacks is refused, saying which alphabets the poster can print."""
    with pytest.raises(PosterTextError, match="Latin"):
        render_poster("診療所", BOT)


# --- the words ---------------------------------------------------------------------------------------------


def test_the_default_words_tell_a_patient_what_matters() -> None:
    """The poster says to get a Matrix app, scan the code, give only the NHS number, that photos are
    encrypted and deleted, and that it is not for emergencies."""
    steps = " ".join(DEFAULT_TEXTS.steps)
    assert "Element" in steps and "Matrix" in steps
    assert "camera" in steps
    assert "only ask for your NHS number" in steps
    assert "never ask for your name, birthday or address" in steps
    assert "encrypted" in DEFAULT_TEXTS.privacy and "deleted" in DEFAULT_TEXTS.privacy
    assert "999" in " ".join(DEFAULT_TEXTS.footer)


def test_the_default_words_use_short_sentences() -> None:
    """Every sentence in the default wording is short (at most 20 words), for a reading age of about 9."""
    texts = [DEFAULT_TEXTS.heading, *DEFAULT_TEXTS.steps, DEFAULT_TEXTS.privacy, *DEFAULT_TEXTS.footer]
    sentences = [s for text in texts for s in re.split(r"[.?!]+(?:\s+|$)", text) if s.strip()]
    assert len(sentences) >= 12
    assert max(len(s.split()) for s in sentences) <= 20


def test_a_practice_can_change_the_words() -> None:
    """A practice's own wording is printed, with as many steps as it gives."""
    texts = PosterTexts(heading="Photos for the surgery", steps=("Install Element.", "Scan the code."))
    poster = render_poster(PRACTICE, BOT, texts=texts)
    assert len(poster.layout.steps) == 2
    assert _scan(_png(poster)) == [LINK]


def test_words_too_long_for_one_page_are_refused() -> None:
    """Wording that would not fit on one A4 page even at half size is refused rather than cut off."""
    texts = PosterTexts(steps=tuple(f"Step {n}: scan the code." for n in range(60)))
    with pytest.raises(PosterTextError, match="A4"):
        render_poster(PRACTICE, BOT, texts=texts)


def test_a_poster_with_no_steps_is_refused() -> None:
    """A poster must tell the patient at least one thing to do."""
    with pytest.raises(PosterTextError, match="step"):
        render_poster(PRACTICE, BOT, texts=PosterTexts(steps=()))


def test_a_practice_that_allows_only_its_own_server_has_the_poster_name_it() -> None:
    """With one allowed server the first step says to make the account there; otherwise the default stays."""
    named = texts_for_server("matrix.example-practice.nhs.uk")
    assert "Make your account on matrix.example-practice.nhs.uk" in named.steps[0]
    assert named.steps[1:] == DEFAULT_TEXTS.steps[1:]
    assert texts_for_server(None) == DEFAULT_TEXTS
    poster = render_poster(PRACTICE, BOT, texts=named)
    assert len(poster.layout.steps) == len(DEFAULT_TEXTS.steps)
