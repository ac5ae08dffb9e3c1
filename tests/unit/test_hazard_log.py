"""The clinical-safety hazard log (`docs/clinical-safety/hazard-log.md`) stays true to the test suite: every
test it names exists, every control states its evidence, and every rating follows the log's own matrix.

`test_no_control_is_still_waiting_for_a_test` fails while any control says "test: none yet": it lists the
gaps, and passes once each has a test that shows the control works.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAZARD_LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"

TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
HAZARD_HEADING = re.compile(r"^### (HAZ-\d{2}): (.+)$", re.MULTILINE)
SECTION_HEADING = re.compile(r"^#{1,3} ", re.MULTILINE)
CONTROL_START = re.compile(r"^- \*\*(C\d+\.\d+)\*\* ")
RISK_LINE = re.compile(
    r"\*\*(Initial|Residual) risk:\*\* severity (\w+), likelihood ([A-Za-z ]+?), rating (\d)\."
)
SUMMARY_ROW = re.compile(r"^\| (HAZ-\d{2}) \| (.+?) \| (\d) \| (\d) \|$", re.MULTILINE)
MATRIX_HEADER = re.compile(r"^\| Likelihood \\ Severity \|(.+)\|$", re.MULTILINE)
NONE_YET = "test: none yet"


@dataclass(frozen=True)
class Control:
    name: str
    text: str

    @property
    def tests(self) -> list[str]:
        return ["::".join(match) for match in TEST_REFERENCE.findall(self.text)]


@dataclass(frozen=True)
class Hazard:
    id: str
    title: str
    text: str

    @property
    def controls(self) -> list[Control]:
        """Each `- **Cn.m** ...` list item, with its indented continuation lines joined on."""
        items: list[tuple[str, list[str]]] = []
        inside = False
        for line in self.text.splitlines():
            start = CONTROL_START.match(line)
            if start is not None:
                items.append((start.group(1), [line.strip()]))
                inside = True
            elif inside and line.startswith("  "):
                items[-1][1].append(line.strip())
            else:
                inside = False
        return [Control(name, " ".join(lines)) for name, lines in items]

    @property
    def tests(self) -> list[str]:
        return ["::".join(match) for match in TEST_REFERENCE.findall(self.text)]

    def risk(self, stage: str) -> tuple[str, str, int]:
        found = [match for match in RISK_LINE.findall(self.text) if match[0] == stage]
        assert len(found) == 1, f"{self.id} should state its {stage.lower()} risk exactly once"
        _, severity, likelihood, rating = found[0]
        return severity, likelihood, int(rating)


@cache
def log_text() -> str:
    return HAZARD_LOG.read_text(encoding="utf-8")


def hazards() -> list[Hazard]:
    text = log_text()
    found: list[Hazard] = []
    for heading in HAZARD_HEADING.finditer(text):
        following = SECTION_HEADING.search(text, heading.end())
        body = text[heading.end() : following.start() if following else len(text)]
        found.append(Hazard(heading.group(1), heading.group(2).strip(), body))
    assert found, "the hazard log should hold at least one hazard"
    return found


def risk_matrix() -> dict[tuple[str, str], int]:
    """(likelihood, severity) -> rating, read from the log's own matrix table."""
    text = log_text()
    header = MATRIX_HEADER.search(text)
    assert header is not None, "the hazard log should hold a risk matrix"
    severities = [cell.strip() for cell in header.group(1).split("|")]
    matrix: dict[tuple[str, str], int] = {}
    for line in text[header.end() :].strip().splitlines()[1:]:  # skip the |---| row
        if not line.startswith("|"):
            break
        likelihood, *ratings = (cell.strip() for cell in line.strip("|").split("|"))
        matrix.update(
            {(likelihood, severity): int(r) for severity, r in zip(severities, ratings, strict=True)}
        )
    return matrix


def functions_defined_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_log_names_exists_in_the_suite() -> None:
    """Each `tests/...py::test_name` in the log is a file in the repository that defines that test."""
    references = sorted(set(TEST_REFERENCE.findall(log_text())))
    assert references, "the hazard log names no tests at all"
    missing = []
    for file, name in references:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file}::{name} (no such file)")
        elif name not in functions_defined_in(path):
            missing.append(f"{file}::{name} (no such test in the file)")
    assert missing == []


def test_every_hazard_names_at_least_one_test() -> None:
    """No hazard rests on procedures alone: each names at least one automated test of a control."""
    assert [hazard.id for hazard in hazards() if not hazard.tests] == []


def test_every_control_states_its_evidence() -> None:
    """Each product control names the tests that show it works, or says plainly that it has none yet."""
    unstated = [
        f"{hazard.id} {control.name}"
        for hazard in hazards()
        for control in hazard.controls
        if not control.tests and NONE_YET not in control.text.lower()
    ]
    assert all(hazard.controls for hazard in hazards()), "every hazard lists its product controls"
    assert unstated == []


def test_no_control_is_still_waiting_for_a_test() -> None:
    """No control in the log still says "test: none yet": every control has a test that shows it works."""
    gaps = [
        f"{hazard.id} {control.name}: {control.text.removeprefix(f'- **{control.name}** ')[:80]}"
        for hazard in hazards()
        for control in hazard.controls
        if NONE_YET in control.text.lower()
    ]
    assert not gaps, "Controls still waiting for a test:\n" + "\n".join(gaps)


def test_every_rating_follows_the_risk_matrix_and_controls_never_raise_it() -> None:
    """Each hazard's initial and residual ratings are what the matrix gives, and the residual is no higher."""
    matrix = risk_matrix()
    wrong = []
    for hazard in hazards():
        for stage in ("Initial", "Residual"):
            severity, likelihood, rating = hazard.risk(stage)
            if matrix.get((likelihood, severity)) != rating:
                wrong.append(f"{hazard.id} {stage}: {likelihood} x {severity} is not {rating}")
        if hazard.risk("Residual")[2] > hazard.risk("Initial")[2]:
            wrong.append(f"{hazard.id}: residual rating above the initial one")
    assert wrong == []


def test_the_summary_lists_every_hazard_once_with_its_ratings() -> None:
    """The summary table names each hazard once, with the same title and ratings as its section."""
    summary = [
        (hazard_id, title.strip(), int(initial), int(residual))
        for hazard_id, title, initial, residual in SUMMARY_ROW.findall(log_text())
    ]
    sections = [
        (hazard.id, hazard.title, hazard.risk("Initial")[2], hazard.risk("Residual")[2])
        for hazard in hazards()
    ]
    assert summary == sections
    assert len({hazard_id for hazard_id, *_ in sections}) == len(sections), "hazard ids are unique"
