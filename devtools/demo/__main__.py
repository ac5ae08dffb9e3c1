"""`python -m devtools.demo [--keep DIR]` from the source checkout (what `bash dev.sh demo` runs)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from devtools.demo.run import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bash dev.sh demo", description="The whole journey on a throwaway local homeserver."
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the demo's files in this directory")
    args = parser.parse_args(argv)
    return asyncio.run(run_demo(args.keep))


if __name__ == "__main__":
    sys.exit(main())
