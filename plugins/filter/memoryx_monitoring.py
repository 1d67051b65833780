"""Jinja filters memoryx_alert_rules, memoryx_scrape_configs: a shim over memoryx_deploy.monitoring."""

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from memoryx_deploy.filters import Filter, plain
from memoryx_deploy.monitoring import alert_rules, scrape_configs


def _alert_rules(monitoring: Any) -> dict[str, Any]:
    return alert_rules(plain(monitoring))


def _scrape_configs(monitoring: Any) -> list[dict[str, Any]]:
    return scrape_configs(plain(monitoring))


class FilterModule:
    def filters(self) -> dict[str, Filter]:
        return {"memoryx_alert_rules": _alert_rules, "memoryx_scrape_configs": _scrape_configs}
