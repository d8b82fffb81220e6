"""The rooms' import rule (pyproject.toml [tool.importlinter]) holds, and the check catches a breach."""

import shutil
import subprocess
import sys
from pathlib import Path

from core.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ROOMS = ("core", "ml", "charts", "assets", "service", "orchestration")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_every_room_imports_only_rooms_below_it():
    result = _lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_and_dagster_in_a_pure_room_are_reported(tmp_path):
    for room in ROOMS:
        shutil.copytree(REPO_ROOT / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "core" / "upward.py").write_text("import assets.publishing\n")
    (tmp_path / "ml" / "orchestrated.py").write_text("from dagster import asset\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "core is not allowed to import assets" in result.stdout
    assert "ml.orchestrated -> dagster" in result.stdout
