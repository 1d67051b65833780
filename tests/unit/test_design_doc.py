"""docs/design.md is current (scripts/design-doc --check), and the generator on small temp trees."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "design-doc"
SECTIONS = ("roles", "playbooks", "inventory", "package")


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("design_doc", str(SCRIPT))
    spec = importlib.util.spec_from_loader("design_doc", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


design_doc = load_script()


def run_main(root: Path, *argv: str) -> int:
    code = design_doc.main(list(argv), root)
    assert isinstance(code, int)
    return code


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def add_role(root: Path, name: str, purpose: str | None) -> None:
    write(root / "roles" / name / "tasks" / "main.yml", "---\n[]\n")
    described = f"    short_description: {purpose}\n" if purpose is not None else ""
    write(root / "roles" / name / "meta" / "argument_specs.yml",
          f"---\nargument_specs:\n  main:\n{described}    options:\n"
          f"      {name}_port:\n        type: int\n      {name}_name:\n        type: str\n")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tiny project: two roles, site.yml and a playbook, an inventory, a flat package, a doc."""
    add_role(tmp_path, "web", "Serve the pages.")
    add_role(tmp_path, "alpha", "Come first.")
    write(tmp_path / "roles" / "no_tasks" / "meta" / "argument_specs.yml", "---\nargument_specs: {}\n")
    write(tmp_path / "site.yml", "---\n# All of it. More words.\n- name: First\n"
          "  ansible.builtin.import_playbook: playbooks/deploy.yml\n")
    write(tmp_path / "playbooks" / "deploy.yml",
          "---\n# Deploys the web role:\n#   ansible-playbook playbooks/deploy.yml\n"
          "- name: Deploy - the web hosts\n  hosts: web_hosts\n  tasks: []\n")
    write(tmp_path / "playbooks" / "other.yml", "---\n- name: Other play\n  hosts: localhost\n  tasks: []\n")
    write(tmp_path / "playbooks" / "tasks" / "one.yml", "---\n# One task file. Second sentence.\n- name: X\n"
          "  ansible.builtin.debug: {}\n")
    write(tmp_path / "inventory" / "production" / "hosts.yml",
          "---\n# Production hosts.\nall:\n  children:\n    web_hosts:\n      hosts:\n"
          "        web-01:\n          ansible_host: 192.0.2.1\n")
    write(tmp_path / "memoryx_deploy" / "__init__.py", '"""The package. Details."""\n')
    write(tmp_path / "memoryx_deploy" / "core.py", '"""Core logic.\n\nMore."""\n')
    write(tmp_path / "memoryx_deploy" / "data" / "loader.py", '"""Not listed."""\n')
    markers = "".join(f"## {name}\n\n<!-- generated:{name} -->\n<!-- /generated:{name} -->\n\n" for name in SECTIONS)
    write(tmp_path / "docs" / "design.md", f"# Design\n\nHand-written.\n\n{markers}The end.\n")
    return tmp_path


def section(root: Path, name: str) -> str:
    text = (root / "docs" / "design.md").read_text(encoding="utf-8")
    return text.split(f"<!-- generated:{name} -->\n", 1)[1].split(f"<!-- /generated:{name} -->", 1)[0]


def test_repository_design_doc_is_current() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr
                                    + "\ndocs/design.md is stale: run scripts/design-doc and review the diff")


def test_generated_sections_and_check(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(tree, "--check") == 1
    assert capsys.readouterr().out.splitlines() == [
        f"docs/design.md: section {name} is stale (run scripts/design-doc)" for name in SECTIONS]
    assert run_main(tree) == 0
    assert run_main(tree, "--check") == 0
    text = (tree / "docs" / "design.md").read_text(encoding="utf-8")
    assert text.startswith("# Design\n\nHand-written.\n") and text.endswith("The end.\n")
    roles = section(tree, "roles")
    assert roles.index("`alpha`: Come first. Inputs (2): port, name.") < roles.index("`web`: Serve the pages.")
    assert "no_tasks" not in roles
    playbooks = section(tree, "playbooks")
    assert "`site.yml`: All of it. It imports" in playbooks
    assert playbooks.index("`playbooks/deploy.yml`: Deploys the web role.") < playbooks.index("`playbooks/other.yml`")
    assert "  - Deploy - the web hosts (hosts `web_hosts`)" in playbooks
    assert "`playbooks/tasks/one.yml`: One task file." in playbooks
    assert "| `web_hosts` |  | web-01 (192.0.2.1) |  |" in section(tree, "inventory")
    package = section(tree, "package")
    assert "- `memoryx_deploy/`: The package." in package and "  - `core.py`: Core logic." in package
    assert "loader" not in package
    assert all(len(line) <= 120 for line in text.splitlines())


def test_stale_section_reported_by_name_then_regenerated(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(tree) == 0
    write(tree / "playbooks" / "tasks" / "two.yml", "---\n# Another task file.\n[]\n")
    capsys.readouterr()
    assert run_main(tree, "--check") == 1
    assert capsys.readouterr().out == "docs/design.md: section playbooks is stale (run scripts/design-doc)\n"
    assert run_main(tree) == 0
    assert run_main(tree, "--check") == 0
    assert "`playbooks/tasks/two.yml`: Another task file." in section(tree, "playbooks")


def test_new_role_appears(tree: Path) -> None:
    assert run_main(tree) == 0
    add_role(tree, "middle", "Sit between.")
    assert run_main(tree, "--check") == 1
    assert run_main(tree) == 0
    roles = section(tree, "roles")
    assert roles.index("`alpha`") < roles.index("`middle`: Sit between.") < roles.index("`web`")
    assert roles.startswith("3 roles")


def test_role_without_short_description_fails_naming_it(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_role(tree, "mute", None)
    before = (tree / "docs" / "design.md").read_text(encoding="utf-8")
    assert run_main(tree) == 2
    assert "role mute: argument_specs.main.short_description is missing" in capsys.readouterr().err
    assert (tree / "docs" / "design.md").read_text(encoding="utf-8") == before
    assert run_main(tree, "--check") == 2


def test_nested_subpackages(tree: Path) -> None:
    write(tree / "memoryx_deploy" / "stack" / "__init__.py", '"""The stack subpackage."""\n')
    write(tree / "memoryx_deploy" / "stack" / "build.py", '"""Builds it."""\n')
    write(tree / "memoryx_deploy" / "stack" / "deep" / "__init__.py", "")
    write(tree / "memoryx_deploy" / "stack" / "deep" / "leaf.py", "x = 1\n")
    write(tree / "memoryx_deploy" / "stack" / "__pycache__" / "build.cpython-311.py", "")
    assert run_main(tree) == 0
    assert section(tree, "package").splitlines() == [
        "- `memoryx_deploy/`: The package.",
        "  - `core.py`: Core logic.",
        "  - `memoryx_deploy/stack/`: The stack subpackage.",
        "    - `build.py`: Builds it.",
        "    - `memoryx_deploy/stack/deep/`: (no docstring)",
        "      - `leaf.py`: (no docstring)",
    ]


def test_missing_markers_fail(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tree / "docs" / "design.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("<!-- /generated:inventory -->\n", ""), encoding="utf-8")
    assert run_main(tree, "--check") == 2
    assert "section inventory needs exactly one pair of markers" in capsys.readouterr().err


def test_first_sentence() -> None:
    assert design_doc.first_sentence("One (a.b) thing, e.g. this. Two.") == "One (a.b) thing, e.g. this."
    assert design_doc.first_sentence("Runs it:\n") == "Runs it."
    assert design_doc.first_sentence("Line one\ncontinues. Next.\n\nOther paragraph.") == "Line one continues."
