"""The time of each test tier of one pytest run, from its JUnit XML (`.ci/run` passes
`--junitxml`): tests and seconds per tier, the lab tier's molecule scenarios apart.
`python bench/ci_tiers.py build/ci-junit.xml` prints the table .ci/run files in docs/figures.md."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

# tier of a test, by its module (JUnit's classname): the first match wins
TIERS = (("tests.lab.test_molecule", "lab: molecule scenarios"), ("tests.lab.", "lab: whole stack"),
         ("tests.gateway.", "fast: gateway on loopback"), ("tests.unit.", "fast: unit, lint, syntax"))


def tier_of(classname: str) -> str:
    return next((tier for prefix, tier in TIERS if classname.startswith(prefix)), "other")


def tier_times(xml: str) -> list[tuple[str, int, float]]:
    """(tier, tests, seconds) for each tier the run has, in TIERS' order."""
    tests: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    for case in ET.fromstring(xml).iter("testcase"):
        tier = tier_of(case.get("classname", ""))
        tests[tier] += 1
        seconds[tier] = seconds.get(tier, 0.0) + float(case.get("time", "0"))
    order = [tier for _, tier in TIERS] + ["other"]
    return [(tier, tests[tier], seconds[tier]) for tier in reversed(order) if tests[tier]]


def table(rows: list[tuple[str, int, float]]) -> str:
    lines = [f"{'tier':<27} {'tests':>5} {'seconds':>8}"]
    lines += [f"{tier:<27} {count:>5} {secs:>8.0f}" for tier, count, secs in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/ci_tiers.py JUNIT_XML", file=sys.stderr)
        return 2
    print(table(tier_times(Path(argv[0]).read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
