"""Fixtures of the lab tier; the helpers live in labkit.py (importable by the tests)."""

from labkit import api_key, deploy_runs, deployed, lab, trust_lab_ca

__all__ = ["api_key", "deploy_runs", "deployed", "lab", "trust_lab_ca"]
