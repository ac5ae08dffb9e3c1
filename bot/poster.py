"""The waiting-room poster: an A4 vector PDF to print, and the same page as a PNG for a website.

The poster shows the practice name, a QR code that opens a chat with the bot (a matrix.to link), the link
written out for anyone who would rather type it, three plain-English steps, a short privacy note, the
practice's phone number and opening times (when configured) and the usual "not for emergencies" line.

Text is set in Noto Sans, shipped by the `fontpkg-noto-sans` package the bot depends on, so the poster
looks the same on every machine, needs no system fonts, and prints Welsh and most European names exactly
("Meddygfa Tŷ Gwyn"). The layout is computed once, in pixels, with
Pillow; the PNG is drawn from it, and the PDF replays it as vectors: text in the embedded (subset) font, so
it stays sharp and selectable, and the QR code as filled squares. A letter the font lacks falls back to its
base letter (reported in `PosterLayout.practice_name_lines`), and anything else (another script) is
refused with a message that says so.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import qrcode  # type: ignore[import-untyped]  # qrcode 8.2 ships no type information
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image, ImageDraw, ImageFont
from qrcode.image.pil import PilImage  # type: ignore[import-untyped]

A4_MM = (210.0, 297.0)
MIN_DPI = 72
MAX_DPI = 600
MAX_PRACTICE_NAME_CHARS = 150
# RFC 3986 lets ':' and '@' stand unencoded in a fragment; keeping them makes the written link readable.
# Everything else outside the unreserved set is percent-encoded ('/' and '?' would otherwise be read by
# matrix.to as an event id or as extra parameters).
_FRAGMENT_SAFE = ":@"
_MATRIX_TO = "https://matrix.to/#/"

_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # the spec's extended (historical) user-id characters
_SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.\-]{1,255})(?::[0-9]{1,5})?"
)  # hostname (dns name, IPv4, [IPv6]) with an optional port, as the Matrix spec's grammar has it
_MAX_USER_ID_BYTES = 255

_INK = 20  # near-black text on white
_PAPER = 255
_STABLE_DATE = datetime(2026, 1, 1, tzinfo=UTC)  # a fixed creation date: the same inputs give the same file
_FONT_PACKAGE, _FONT_FILE = "fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"  # Regular is its default
_MISSING_GLYPH_PROBE = "\U0010fffd"  # a private-use code point no font maps: it draws the .notdef box
_SUBSTITUTES = {"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}


class InvalidUserIdError(ValueError):
    """The text is not a Matrix user id, so no link to it can be made."""


class PosterTextError(ValueError):
    """A text cannot go on the poster (too long, or the font cannot draw it); the message says why."""


@dataclass(frozen=True)
class PosterTexts:
    """What the poster says under the practice name; the default is written for a reading age of about 9."""

    heading: str = "Send a photo to your doctor or nurse"
    steps: tuple[str, ...] = (
        "Get the free app Element from your phone's app store, and make an account. "
        "(Any Matrix chat app will do.)",
        "Point your phone's camera at the square code above. Tap the link that pops up, then start a chat.",
        "Answer the questions in the chat. We only ask for your NHS number. "
        "We will never ask for your name, birthday or address.",
    )
    privacy: str = (
        "Your photos are locked (encrypted), so only the practice team can see them. "
        "They are deleted from the chat as soon as we have them. "
        "We only keep a photo in your health record if your doctor or nurse needs it. "
        "You can ask us to delete it once they have seen it."
    )
    footer: tuple[str, ...] = (
        "This is not for emergencies. In an emergency call 999. For urgent advice call 111.",
        "No smartphone? Phone or visit the practice as usual.",
    )


DEFAULT_TEXTS = PosterTexts()


WEB_CHAT_TEXTS = replace(
    DEFAULT_TEXTS,
    steps=(
        "Point your phone's camera at the square code above, and tap the link that pops up. "
        "No app or account is needed.",
        "A private chat with the practice opens in your phone's web browser.",
        DEFAULT_TEXTS.steps[2],
    ),
)


def texts_for_server(account_server: str | None) -> PosterTexts:
    """The default texts, naming the server to make an account on when the practice allows only one."""
    if account_server is None:
        return DEFAULT_TEXTS
    first = (
        f"Get the free app Element from your phone's app store. Make your account on {account_server}: "
        f"where the app shows matrix.org, tap Edit and type {account_server}."
    )
    return replace(DEFAULT_TEXTS, steps=(first, *DEFAULT_TEXTS.steps[1:]))


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels; `right` and `bottom` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    def contains(self, other: Box) -> bool:
        return (
            self.left <= other.left
            and self.top <= other.top
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def overlaps(self, other: Box) -> bool:
        return (
            self.left < other.right
            and other.left < self.right
            and self.top < other.bottom
            and other.top < self.bottom
        )


@dataclass(frozen=True)
class PosterLayout:
    """Where each part was drawn (ink boxes), so a caller or a test can check the page without OCR."""

    page: Box
    margin: Box  # the printable area inside the margins: every part lies within it
    practice_name: Box
    practice_name_lines: tuple[str, ...]  # as drawn: wrapped, and with any letter the font lacks replaced
    heading: Box
    qr: Box  # the QR symbol including its quiet zone
    qr_module_px: int
    link: Box
    steps: tuple[Box, ...]
    privacy: Box
    footer: Box
    text_scale: float  # 1.0 unless the text had to shrink to fit the page


@dataclass(frozen=True)
class Poster:
    png: bytes
    pdf: bytes
    layout: PosterLayout


def matrix_to_link(user_id: str) -> str:
    """The https://matrix.to link that opens a chat with `user_id`; raise InvalidUserIdError if it is not one."""
    localpart, sep, server = user_id.removeprefix("@").partition(":")
    if not (
        user_id.startswith("@")
        and sep
        and _LOCALPART.fullmatch(localpart)
        and _SERVER_NAME.fullmatch(server)
        and len(user_id.encode()) <= _MAX_USER_ID_BYTES
    ):
        raise InvalidUserIdError(
            f"{user_id!r} is not a Matrix user id: it should look like @photobot:example.org"
        )
    return _MATRIX_TO + quote(user_id, safe=_FRAGMENT_SAFE)


def render_poster(
    practice_name: str,
    bot_user_id: str,
    *,
    dpi: int = 150,
    texts: PosterTexts = DEFAULT_TEXTS,
    phone: str = "",
    opening_times: str = "",
    web_chat_url: str = "",
) -> Poster:
    """Lay out the A4 poster at `dpi` (1240x1754 pixels at 150 dpi); return it as PNG and vector PDF.

    `phone` and `opening_times`, when given, are printed above the footer. With `web_chat_url` the QR code
    opens the practice's web chat (no app needed) instead of a Matrix app's chat with the bot."""
    link = web_chat_url or matrix_to_link(bot_user_id)
    name = " ".join(practice_name.split())
    if not name:
        raise PosterTextError("The practice name is empty.")
    if len(name) > MAX_PRACTICE_NAME_CHARS:
        raise PosterTextError(
            f"The practice name is {len(name)} characters long; the poster takes up to {MAX_PRACTICE_NAME_CHARS}."
        )
    if not texts.steps:
        raise PosterTextError("The poster needs at least one step.")
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be between {MIN_DPI} and {MAX_DPI}, not {dpi}.")

    contact = tuple(
        line
        for line in (
            f"Phone: {' '.join(phone.split())}" if phone.strip() else "",
            f"Open: {' '.join(opening_times.split())}" if opening_times.strip() else "",
        )
        if line
    )
    texts = PosterTexts(texts.heading, texts.steps, texts.privacy, (*texts.footer, *contact))
    with ExitStack() as stack:
        font_path = stack.enter_context(
            resources.as_file(resources.files(_FONT_PACKAGE).joinpath(_FONT_FILE))
        )
        fonts = _FontMaker(font_path)
        scale = _Scale(dpi)
        qr = _qr_code(link, target_px=scale.mm(70), min_px=scale.mm(40))
        runs: list[_Run] = []
        image, layout = _draw(name, link, qr=qr, texts=texts, fonts=fonts, scale=scale, runs=runs)
        pdf = _pdf(runs, qr, layout.qr, scale=scale, font_path=font_path, title=f"{name}: send us a photo")
    return Poster(png=_png(image, dpi), pdf=pdf, layout=layout)


# --- measuring and fonts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    dpi: int

    def mm(self, millimetres: float) -> int:
        return round(millimetres / 25.4 * self.dpi)

    def pt(self, points: float) -> int:
        return max(1, round(points / 72 * self.dpi))

    def page(self) -> tuple[int, int]:
        return self.mm(A4_MM[0]), self.mm(A4_MM[1])


class _FontMaker:
    """Fonts by pixel size, from one font file; cached for one rendering."""

    def __init__(self, font_file: Path) -> None:
        self._font_file = font_file
        self._cache: dict[int, ImageFont.FreeTypeFont] = {}

    def __call__(self, size_px: int) -> ImageFont.FreeTypeFont:
        if size_px not in self._cache:
            self._cache[size_px] = ImageFont.truetype(self._font_file, size=size_px)
        return self._cache[size_px]

    def drawable(self, text: str) -> str:
        """`text` with letters the font lacks replaced by their base letter; PosterTextError if impossible."""
        font = self(48)
        missing = _mask_bytes(font, _MISSING_GLYPH_PROBE)

        def has(char: str) -> bool:
            return char.isspace() or _mask_bytes(font, char) != missing

        out: list[str] = []
        for char in text:
            if has(char):
                out.append(char)
                continue
            plain = _SUBSTITUTES.get(char) or "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            if not plain or not all(has(c) for c in plain):
                raise PosterTextError(
                    f"The poster font (Noto Sans) cannot draw {char!r} (in {text!r}): write it in the Latin, Greek or Cyrillic alphabet."
                )
            out.append(plain)
        return "".join(out)


def _mask_bytes(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def _wrap(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Greedy word wrap; a word too long for a line is broken between characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if fits(candidate):
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if line and not fits(line + char):
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines


# --- layout ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextBlock:
    lines: tuple[str, ...]
    font: ImageFont.FreeTypeFont
    stroke: int  # a stroke in the ink colour makes the regular font read as bold
    line_pitch: int

    @property
    def height(self) -> int:
        ascent, descent = self.font.getmetrics()
        return ascent + descent + (len(self.lines) - 1) * self.line_pitch + 2 * self.stroke


def _block(
    paragraphs: Sequence[str],
    width: int,
    size_px: int,
    fonts: _FontMaker,
    *,
    stroke: int = 0,
    pitch: float = 1.25,
) -> _TextBlock:
    """Each paragraph wrapped to `width`, one after another."""
    font = fonts(size_px)

    def fits(line: str) -> bool:
        left, _, right, _ = font.getbbox(line, stroke_width=stroke)
        return right - min(left, 0) <= width

    lines = tuple(line for paragraph in paragraphs for line in _wrap(paragraph, fits))
    return _TextBlock(lines, font, stroke, round(size_px * pitch))


def _bold(size_px: int) -> int:
    """A stroke width that makes the regular font read as bold without letters running together."""
    return max(1, size_px // 45)


def _name_block(name: str, width: int, scale: _Scale, fonts: _FontMaker, factor: float) -> _TextBlock:
    """The largest practice-name size (54 pt down to 26 pt) that needs at most three lines."""
    for points in range(54, 26, -2):
        size = scale.pt(points * factor)
        block = _block([name], width, size, fonts, stroke=_bold(size), pitch=1.15)
        if len(block.lines) <= 3:
            return block
    size = scale.pt(26 * factor)
    return _block([name], width, size, fonts, stroke=_bold(size), pitch=1.15)


@dataclass(frozen=True)
class _Plan:
    name: _TextBlock
    heading: _TextBlock
    link: _TextBlock
    numbers: tuple[_TextBlock, ...]
    steps: tuple[_TextBlock, ...]
    step_indent: int
    privacy: _TextBlock
    footer: _TextBlock

    FLEXIBLE_GAPS = 5  # after the name, the heading, the link, the steps and the privacy note

    def height(self, qr_px: int, small_gap: int) -> int:
        steps = sum(max(n.height, s.height) for n, s in zip(self.numbers, self.steps, strict=True))
        fixed = (
            self.name.height
            + self.heading.height
            + qr_px
            + self.link.height
            + steps
            + self.privacy.height
            + self.footer.height
        )
        return fixed + small_gap * (len(self.steps) - 1 + self.FLEXIBLE_GAPS)


def _plan(
    name: str, link: str, *, texts: PosterTexts, width: int, scale: _Scale, fonts: _FontMaker, factor: float
) -> _Plan:
    def size(points: float) -> int:
        return scale.pt(points * factor)

    number_px = size(24)
    indent = round(fonts(number_px).getlength("8") * 2.2)
    return _Plan(
        name=_name_block(name, width, scale, fonts, factor),
        heading=_block([texts.heading], width, size(28), fonts, stroke=_bold(size(28))),
        link=_block([link], width, size(15), fonts),
        numbers=tuple(
            _block([str(n)], indent, number_px, fonts, stroke=_bold(number_px))
            for n in range(1, len(texts.steps) + 1)
        ),
        steps=tuple(_block([step], width - indent, size(18), fonts) for step in texts.steps),
        step_indent=indent,
        privacy=_block([texts.privacy], width, size(14), fonts),
        footer=_block(texts.footer, width, size(14), fonts, pitch=1.3),
    )


# --- drawing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One line of text as drawn: where its baseline starts (pixels), its size, and its bold stroke."""

    x: float
    baseline: float
    text: str
    size_px: int
    stroke: int


def _draw(
    name: str,
    link: str,
    *,
    qr: _QrCode,
    texts: PosterTexts,
    fonts: _FontMaker,
    scale: _Scale,
    runs: list[_Run],
) -> tuple[Image.Image, PosterLayout]:
    """Draw the page into a Pillow image, and list each line of text drawn in `runs` for the PDF."""
    page_w, page_h = scale.page()
    margin = scale.mm(14)
    width = page_w - 2 * margin
    available = page_h - 2 * margin
    small_gap = scale.mm(3)
    drawable = PosterTexts(
        heading=fonts.drawable(texts.heading),
        steps=tuple(fonts.drawable(step) for step in texts.steps),
        privacy=fonts.drawable(texts.privacy),
        footer=tuple(fonts.drawable(line) for line in texts.footer),
    )
    plan, factor = _fit(
        fonts.drawable(name),
        link,
        texts=drawable,
        width=width,
        available=available,
        qr_px=qr.image.height,
        small_gap=small_gap,
        scale=scale,
        fonts=fonts,
    )
    gap = small_gap + (available - plan.height(qr.image.height, small_gap)) // plan.FLEXIBLE_GAPS

    image = Image.new("L", (page_w, page_h), _PAPER)
    draw = ImageDraw.Draw(image)
    centre = page_w // 2
    y = margin

    name_box = _draw_block(draw, runs, plan.name, y, centre=centre)
    y += plan.name.height + gap
    heading_box = _draw_block(draw, runs, plan.heading, y, centre=centre)
    y += plan.heading.height + gap

    qr_left = centre - qr.image.width // 2
    image.paste(qr.image, (qr_left, y))
    qr_box = Box(qr_left, y, qr_left + qr.image.width, y + qr.image.height)
    y += qr.image.height
    link_box = _draw_block(draw, runs, plan.link, y, centre=centre)
    y += plan.link.height + gap

    step_boxes: list[Box] = []
    for number, step in zip(plan.numbers, plan.steps, strict=True):
        number_box = _draw_block(draw, runs, number, y, left=margin)
        text_box = _draw_block(draw, runs, step, y, left=margin + plan.step_indent)
        step_boxes.append(_union(number_box, text_box))
        y += max(number.height, step.height) + small_gap
    y += gap - small_gap

    privacy_box = _draw_block(draw, runs, plan.privacy, y, left=margin)
    footer_box = _draw_block(draw, runs, plan.footer, page_h - margin - plan.footer.height, centre=centre)

    layout = PosterLayout(
        page=Box(0, 0, page_w, page_h),
        margin=Box(margin, margin, page_w - margin, page_h - margin),
        practice_name=name_box,
        practice_name_lines=plan.name.lines,
        heading=heading_box,
        qr=qr_box,
        qr_module_px=qr.module_px,
        link=link_box,
        steps=tuple(step_boxes),
        privacy=privacy_box,
        footer=footer_box,
        text_scale=factor,
    )
    return image, layout


def _fit(
    name: str,
    link: str,
    *,
    texts: PosterTexts,
    width: int,
    available: int,
    qr_px: int,
    small_gap: int,
    scale: _Scale,
    fonts: _FontMaker,
) -> tuple[_Plan, float]:
    """The plan at full text size, or shrunk in 5% steps (to half size at most) until it fits the page."""
    for step in range(11):
        factor = 1.0 - step * 0.05
        plan = _plan(name, link, texts=texts, width=width, scale=scale, fonts=fonts, factor=factor)
        if plan.height(qr_px, small_gap) <= available:
            return plan, factor
    raise PosterTextError("The poster's texts are too long to fit on one A4 page.")


def _draw_block(
    draw: ImageDraw.ImageDraw,
    runs: list[_Run],
    block: _TextBlock,
    top: int,
    *,
    centre: int | None = None,
    left: int = 0,
) -> Box:
    """Draw the lines from `top` (centred on `centre`, or from `left`) and return the ink's bounding box."""
    ascent, _ = block.font.getmetrics()
    anchor = "ms" if centre is not None else "ls"
    boxes: list[Box] = []
    for index, line in enumerate(block.lines):
        # Left-aligned ink starts at `left`: past a glyph's negative side bearing and the bold stroke.
        ink_left = block.font.getbbox(line, stroke_width=block.stroke)[0]
        x = centre if centre is not None else left - min(0, ink_left)
        at = (x, top + block.stroke + ascent + index * block.line_pitch)
        draw.text(
            at, line, fill=_INK, font=block.font, anchor=anchor, stroke_width=block.stroke, stroke_fill=_INK
        )
        ink = draw.textbbox(at, line, font=block.font, anchor=anchor, stroke_width=block.stroke)
        boxes.append(Box(*(int(edge) for edge in ink)))
        start = at[0] - block.font.getlength(line) / 2 if centre is not None else at[0]
        runs.append(_Run(start, at[1], line, int(block.font.size), block.stroke))
    return _union(*boxes)


def _union(*boxes: Box) -> Box:
    return Box(
        min(b.left for b in boxes),
        min(b.top for b in boxes),
        max(b.right for b in boxes),
        max(b.bottom for b in boxes),
    )


@dataclass(frozen=True)
class _QrCode:
    image: Image.Image
    module_px: int
    modules: tuple[tuple[bool, ...], ...]  # True for a dark module, quiet zone included


def _qr_code(link: str, *, target_px: int, min_px: int) -> _QrCode:
    """The QR code (error correction Q, four-module quiet zone) at the largest whole module size that fits."""
    border = 4
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=border, box_size=1)
    code.add_data(link)
    code.make(fit=True)
    modules = int(code.modules_count) + 2 * border
    module_px = target_px // modules
    if module_px < 2 or module_px * modules < min_px:
        raise PosterTextError("The link is too long to print as a QR code at this resolution.")
    code.box_size = module_px
    made = code.make_image(image_factory=PilImage).get_image()
    if not isinstance(made, Image.Image):
        raise TypeError("qrcode's Pillow image factory did not return a Pillow image.")
    matrix = tuple(tuple(bool(dark) for dark in row) for row in code.get_matrix())
    return _QrCode(made.convert("L"), module_px, matrix)


def _png(image: Image.Image, dpi: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


def _pdf(
    runs: Sequence[_Run], qr: _QrCode, qr_box: Box, *, scale: _Scale, font_path: Path, title: str
) -> bytes:
    """One A4 page in points, replaying the drawn layout as vectors; no dates, so the output is stable."""
    to_pt = 72 / scale.dpi
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_title(title)
    pdf.set_creator("GP Photo Bot")
    pdf.set_producer("GP Photo Bot")
    pdf.set_creation_date(_STABLE_DATE)
    pdf.set_auto_page_break(auto=False)
    pdf.set_margin(0)
    pdf.add_page()
    pdf.add_font("Poster", fname=font_path)
    pdf.set_text_color(_INK)
    pdf.set_draw_color(_INK)
    for run in runs:
        pdf.set_font("Poster", size=run.size_px * to_pt)
        # Pillow widens each glyph by the stroke on every side; a PDF stroke straddles the outline.
        pdf.text_mode = TextMode.FILL_STROKE if run.stroke else TextMode.FILL
        pdf.set_line_width(2 * run.stroke * to_pt)
        pdf.text(run.x * to_pt, run.baseline * to_pt, run.text)
    pdf.text_mode = TextMode.FILL
    pdf.set_fill_color(0)
    size = qr.module_px * to_pt
    for row, line in enumerate(qr.modules):
        column = 0
        while column < len(line):  # one rectangle per run of dark modules in a row
            if not line[column]:
                column += 1
                continue
            end = column
            while end < len(line) and line[end]:
                end += 1
            x = (qr_box.left + column * qr.module_px) * to_pt
            y = (qr_box.top + row * qr.module_px) * to_pt
            pdf.rect(x, y, (end - column) * size, size, style="F")
            column = end
    return bytes(pdf.output())
