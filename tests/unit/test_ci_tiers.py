"""bench/ci_tiers.py: the time of each tier, out of pytest's JUnit XML."""

from __future__ import annotations

from bench.ci_tiers import table, tier_times

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_lock" name="a" time="1.5"/>
<testcase classname="tests.unit.test_plan" name="b" time="0.5"/>
<testcase classname="tests.gateway.test_routes" name="c" time="10"/>
<testcase classname="tests.lab.test_molecule" name="d[x]" time="100"/>
<testcase classname="tests.lab.test_restart" name="e" time="40.4"><failure message="x"/></testcase>
</testsuite></testsuites>"""


def test_each_tier_sums_its_tests_and_molecule_stands_apart() -> None:
    assert tier_times(XML) == [("fast: unit, lint, syntax", 2, 2.0), ("fast: gateway on loopback", 1, 10.0),
                               ("lab: whole stack", 1, 40.4), ("lab: molecule scenarios", 1, 100.0)]


def test_the_table_names_each_tier() -> None:
    assert table(tier_times(XML)).splitlines()[1:3] == [
        "fast: unit, lint, syntax        2        2", "fast: gateway on loopback       1       10"]
