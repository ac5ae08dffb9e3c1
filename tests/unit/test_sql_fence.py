"""Every SQL statement of the application lives in `storage/`: no `execute(` call and no SQL statement text in
`bot/` or `handlers/`. A second database backend then needs only `storage/` rewritten, and a reader finds
every statement that touches a table in that table's repository.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("bot", "handlers")  # every application package except storage/

# What a statement starts with, written as SQL writes it: a keyword followed by what that statement needs.
# User-facing words in capitals ("DONE", "DELETE this photo") do not match these shapes.
SQL = re.compile(
    r"\b(SELECT\s[\s\S]*?\bFROM\b|SELECT\s+(1|COUNT\(|\*)|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b"
    r"|DELETE\s+FROM\b|REPLACE\s+INTO\b|(CREATE|DROP)\s+(TABLE|INDEX|TRIGGER|VIEW)\b|ALTER\s+TABLE\b"
    r"|PRAGMA\s+\w+|BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED|TRANSACTION)\b|VACUUM\b)"
)
EXECUTE = frozenset({"execute", "executemany", "executescript", "execute_fetchall", "execute_insert"})


@dataclass(frozen=True)
class Misplaced:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _text_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, joined
        return " ".join(
            part.value
            for part in node.values
            if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
    return None


def misplaced_sql(source: str, path: str) -> list[Misplaced]:
    """The SQL statements and database calls in one module's source."""
    found: list[Misplaced] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE:
            found.append(Misplaced(path, node.lineno, f".{node.func.attr}( call"))
        text = _text_of(node)
        if text is not None:
            match = SQL.search(text)
            if match:
                found.append(Misplaced(path, getattr(node, "lineno", 0), f"SQL text {match.group(0)[:40]!r}"))
    return sorted(set(found), key=lambda item: (item.path, item.line, item.what))


def _modules() -> list[Path]:
    return sorted(path for package in APPLICATION for path in (ROOT / package).rglob("*.py"))


def test_no_sql_outside_storage() -> None:
    """No module of the application outside storage/ runs or spells a SQL statement."""
    modules = _modules()
    assert len(modules) > 20, "the fence found too few modules to be looking in the right place"
    found = [
        item for path in modules for item in misplaced_sql(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not found, "SQL outside storage/ (move it into the repository of its table):\n" + "\n".join(
        map(str, found)
    )


def test_the_fence_sees_a_misplaced_statement() -> None:
    """A handler that runs its own statement, plain, spread over lines or in an f-string, is caught."""
    source = """
async def forget(db, photo_id, column):
    await db.execute("DELETE FROM photos WHERE photo_id = ?", (photo_id,))
    async with db.execute(
        "SELECT photo_id, wrapped_key"
        " FROM photos WHERE submission_id IS NULL"
    ) as cursor:
        pass
    sql = f"UPDATE photos SET {column} = ? WHERE photo_id = ?"
    await run(sql)
"""
    found = misplaced_sql(source, "handlers/example.py")
    assert [(item.line, item.what.split(" ")[0]) for item in found] == [
        (3, ".execute("),
        (3, "SQL"),
        (4, ".execute("),
        (5, "SQL"),
        (9, "SQL"),
    ]


def test_words_patients_and_clinicians_read_are_not_sql() -> None:
    """Capitalised words in the bot's texts (DONE, DELETE, UPDATE) are not mistaken for statements."""
    source = """
TEXTS = ("Type DONE when you have sent them all.", "Reply DELETE to remove it.", "UPDATE: we are open.",
         "Select the photo from your gallery.")
"""
    assert misplaced_sql(source, "bot/texts.py") == []
