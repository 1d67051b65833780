"""docs/figures.md: the README's figures, each section written by the command that measured it.

A benchmark calls `write_section(name, command, text)`; the section between its markers is
replaced (or appended), so the file always holds the last figures of every command, never a
hand-kept number. `python bench/figures.py NAME FILE COMMAND...` files a report that a test tier
wrote (build/lab-timings.txt, build/restart-report.txt) under NAME.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures.md"
HEADER = """# Figures

Generated: every section below is written by the command it names (`bench/figures.py`), on
this project's kind of machine (2 cores, Debian 12). Run the command again to refresh it; do not
edit by hand. The README links here instead of copying numbers.
"""


def write_section(name: str, command: str, text: str, path: Path = FIGURES) -> None:
    """Replace (or add) section `name` of the figures file with `text`, as printed by `command`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<!-- figures:{name} -->\n## {name}\n\n`{command}` ({stamp}):\n\n"
            f"```\n{text.rstrip()}\n```\n<!-- /figures:{name} -->\n")
    current = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(rf"<!-- figures:{re.escape(name)} -->\n.*?<!-- /figures:{re.escape(name)} -->\n",
                         re.DOTALL)
    appended = current.rstrip("\n") + "\n\n" + body
    updated = pattern.sub(lambda _: body, current) if pattern.search(current) else appended
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated, encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python bench/figures.py NAME REPORT_FILE COMMAND...", file=sys.stderr)
        return 2
    name, report, command = argv[0], Path(argv[1]), " ".join(argv[2:])
    write_section(name, command, report.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
