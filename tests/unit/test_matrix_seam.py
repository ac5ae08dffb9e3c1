"""The seam at the Matrix edge stays a seam: handlers know Matrix only through `bot.matrix.port`."""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"


def _reaches_past_the_port(source: str) -> list[str]:
    """Each use of the concrete gateway or of a Matrix client in a module: what and on which line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "MatrixGateway":
            found.append(f"line {node.lineno}: MatrixGateway")
        if isinstance(node, ast.alias) and node.name == "MatrixGateway":
            found.append("imports MatrixGateway")
        if isinstance(node, ast.Attribute) and node.attr == "client":
            found.append(f"line {node.lineno}: .client")
    return found


def test_no_handler_uses_the_concrete_gateway_or_its_client() -> None:
    """Every handler is typed against the Matrix port and never reaches through it for nio's client, so an
    in-memory fake can stand in for Matrix in its unit tests."""
    offences = {
        path.name: found
        for path in sorted(HANDLERS.glob("*.py"))
        if (found := _reaches_past_the_port(path.read_text()))
    }

    assert offences == {}


def test_the_check_sees_a_handler_typed_against_the_gateway() -> None:
    """The check above is not blind: a handler annotated with the gateway, or using its client, is found."""
    source = (
        "from bot.matrix.gateway import MatrixGateway\n"
        "def f(gateway: MatrixGateway) -> None:\n"
        "    gateway.client.close()\n"
    )

    assert _reaches_past_the_port(source) == [
        "imports MatrixGateway",
        "line 2: MatrixGateway",
        "line 3: .client",
    ]
