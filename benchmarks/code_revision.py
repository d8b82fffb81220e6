"""The code revision a benchmark measured, for the docs it writes: the short commit, and which of the files
behind its figures had uncommitted changes when it ran."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


def code_revision(root: Path, sources: Sequence[str]) -> str:
    """The short commit in backticks, followed by "with uncommitted changes in <paths>" when any of ``sources``
    (paths relative to ``root``) has them; "unknown (not a git checkout)" outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *sources],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    dirty = [line[3:] for line in status.splitlines()]
    return f"`{head}`" + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")
