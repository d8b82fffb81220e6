#!/usr/bin/env python3
"""The `dbt_executable` the dbt resource hands dagster-dbt: dbt, tied to the process that starts it.

It asks the kernel to kill it when its parent (the refresh run process) dies, then execs the real dbt
(SPENDWISE_DBT_EXECUTABLE, else the dbt beside this interpreter). The tie survives exec, so a
`kill -9` of a refresh never leaves dbt writing on its own.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, possibly by another Python

from core.processes import die_with_parent  # noqa: E402


def main() -> None:
    real = os.environ.get("SPENDWISE_DBT_EXECUTABLE") or str(Path(sys.executable).with_name("dbt"))
    parent = os.environ.get("SPENDWISE_DBT_PARENT_PID")
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    os.execv(real, [real, *sys.argv[1:]])


if __name__ == "__main__":
    main()
