"""`python -m memoryx_deploy status`: playbooks/status.yml through ansible-runner, its report
as a table or as JSON, and an exit status other programs can act on (0 as the data says,
1 a difference or a failure, each named; 2 no report: the run stopped before it)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from memoryx_deploy.operate.status import format_status, report_from_events

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "status.yml"


def run_status(inventory: Path | None, limit: str | None, as_json: bool,
               out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    import ansible_runner  # the controller's dependency, loaded only for this command

    # ansible-playbook next to this interpreter (the .venv), even when the shell has no .venv on PATH
    env = {"ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg")),
           "ANSIBLE_NOCOLOR": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    cmdline = f"--limit {limit},localhost" if limit else None
    with tempfile.TemporaryDirectory(prefix="memoryx-status-") as tmp:
        result = ansible_runner.run(
            private_data_dir=tmp, project_dir=str(ROOT), playbook=str(PLAYBOOK),
            inventory=str(inventory) if inventory else None, envvars=env, cmdline=cmdline,
            quiet=True)
        report = report_from_events(result.events)
        if report is None:
            tail = result.stdout.read().splitlines()[-25:] if result.stdout else []
            print(f"status: playbooks/status.yml stopped before its report ({result.status}, "
                  f"rc {result.rc}):", *tail, sep="\n", file=err)
            return 2
    if as_json:
        json.dump(report, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write("\n".join(format_status(report)) + "\n")
    return 0 if report["healthy"] else 1
