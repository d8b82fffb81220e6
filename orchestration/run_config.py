"""The refresh's run config from a file the user names: the same `ops:` settings the Dagster UI's launchpad
takes (bootstrap sizes, backtest folds, the media mix's lift-tests file, ...), for the runs that start
without a launchpad: `spendwise refresh` / `spendwise run` (`--config FILE`, else SPENDWISE_RUN_CONFIG),
a POST /refresh child (it inherits the service's environment), the 30-minute schedule and the landing
sensor (both read SPENDWISE_RUN_CONFIG at each tick, so an edit applies from the next run on).

```yaml
ops:
  media_mix_model: {config: {n_bootstrap: 200}}
  channel_forecasts: {config: {backtest_folds: 5, n_jobs: 1}}
```

A file that cannot be read, is not YAML, holds anything but `ops:`, or names an op or a setting the refresh
job does not have is refused before anything runs, with the file and the offending entry named.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

RUN_CONFIG_ENV = "SPENDWISE_RUN_CONFIG"


class RunConfigError(ValueError):
    """The run-config file is unusable; the message names the file and what is wrong."""


def run_config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """`explicit` (a command's --config), else SPENDWISE_RUN_CONFIG, else None (the defaults)."""
    raw = str(explicit) if explicit is not None else (os.environ.get(RUN_CONFIG_ENV) or "").strip()
    return Path(raw).expanduser() if raw else None


def read_run_config(path: Path | None) -> dict[str, Any]:
    """The file's run config as `{"ops": {...}}` ({} without a file); shape checked, not yet the job's fields."""
    if path is None:
        return {}
    import yaml

    where = f"run config {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunConfigError(f"{where}: no such file (set by --config or {RUN_CONFIG_ENV})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunConfigError(f"{where}: cannot be read: {exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise RunConfigError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise RunConfigError(f"{where}: expected a mapping with one key, ops:, got {type(loaded).__name__}")
    other = sorted(str(k) for k in loaded if k != "ops")
    if other:
        raise RunConfigError(f"{where}: only ops: can be set here (the refresh sets loggers and resources "
                             f"itself); remove {', '.join(other)}")
    ops = loaded.get("ops") or {}
    if not isinstance(ops, dict):
        raise RunConfigError(f"{where}: ops: must be a mapping of op name to {{config: ...}}")
    return {"ops": ops}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, mappings merged key by key (extra wins)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validated_run_config(job, path: Path | None) -> dict[str, Any]:
    """The file's run config, checked against `job`'s config schema (RunConfigError if not)."""
    from dagster import DagsterInvalidConfigError, validate_run_config

    config = read_run_config(path)
    if not config:
        return config
    try:
        validate_run_config(job, config)
    except DagsterInvalidConfigError as exc:
        problems = "; ".join(_in_words(e, job) for e in exc.errors[:3]) or str(exc)
        more = f" (and {len(exc.errors) - 3} more)" if len(exc.errors) > 3 else ""
        raise RunConfigError(f"run config {path}: {problems}{more}") from None
    return config


def _in_words(error, job) -> str:
    """One Dagster config error as `ops.x.config.y: message` on one line; an unknown entry is named with the
    closest known ones instead of Dagster's dump of the whole schema."""
    import difflib

    stack = getattr(error, "stack", None)
    entries = [getattr(e, "field_name", None) for e in getattr(stack, "entries", [])]
    where = ".".join(e for e in entries if e) or "(top level)"
    data = getattr(error, "error_data", None)
    unknown = getattr(data, "field_names", None) or ([data.field_name] if getattr(data, "field_name", None) else [])
    if unknown and "unexpected" in str(getattr(error, "message", "")).lower():
        known = _known_fields(job, [e for e in entries if e])
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=2)
            hints.append(f"{name!r}" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
        listed = f"; known here: {', '.join(known)}" if known and len(known) <= 12 else ""
        return f"{where}: unknown entry {', '.join(hints)}{listed}"
    message = " ".join(str(getattr(error, "message", error)).split())
    return f"{where}: {message}"


def _known_fields(job, path: list[str]) -> list[str]:
    """The field names the job's run-config schema has at `path` ([] where it cannot tell)."""
    try:
        config_type = job.run_config_schema.config_type
        for name in path:
            config_type = config_type.fields[name].config_type
        return sorted(config_type.fields)
    except (AttributeError, KeyError):
        return []
