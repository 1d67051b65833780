"""memoryx-deploy's logic: the stack model, its validation, the plan and the client config.

`plugins/filter/memoryx.py` exposes these functions to Ansible as Jinja filters.
"""

from memoryx_deploy.inputs.variables import CONFIG_KEYS
from memoryx_deploy.model.stack import build_stack
from memoryx_deploy.render.client_config import client_config, render_env, render_python
from memoryx_deploy.render.plan import PlanRow, format_plan, plan_rows
from memoryx_deploy.schema.stack import Stack, StackError

__all__ = [
    "CONFIG_KEYS",
    "PlanRow",
    "Stack",
    "StackError",
    "build_stack",
    "client_config",
    "format_plan",
    "plan_rows",
    "render_env",
    "render_python",
]
