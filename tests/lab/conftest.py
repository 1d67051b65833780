"""Fixtures of the lab tier; the helpers live in labkit.py (importable by the tests)."""

from labkit import api_key, deploy_runs, deployed, lab

__all__ = ["api_key", "deploy_runs", "deployed", "lab"]
