"""The storage layer knows nothing of what patients are told (architecture: arrows point down only)."""

from __future__ import annotations

import ast
from pathlib import Path

STORAGE = Path(__file__).resolve().parents[2] / "storage"
# Modules above storage/ in the layering, which storage/ must never import.
ABOVE_STORAGE = ("bot.texts", "handlers")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_storage_module_imports_the_patient_texts_or_a_handler() -> None:
    """Every module in storage/ imports neither bot.texts nor handlers/."""
    found = sorted(
        f"{path.name}: {name}"
        for path in STORAGE.rglob("*.py")
        for name in _imports(path)
        if any(name == above or name.startswith(f"{above}.") for above in ABOVE_STORAGE)
    )
    assert STORAGE.is_dir()
    assert found == []
