"""dbt wiring: the cached DbtProject, the translator that names groups and kinds once, the dbt assets,
and the dbt resource that hands dbt its warehouse connection.

No dbt command runs at import: the manifest is prepared by `make manifest`, the CLI and the tests.
Nothing here writes the process environment: dbt gets the warehouse variables that
`dbt_project/profiles.yml` reads from the resource, for the duration of each invocation.
"""


import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetSpec, Config
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from pydantic import Field

from core.refresh_lock import tie_to_refresh_owner
from core.settings import DBT_DIR, WarehouseUrl, get_settings, warehouse_url_from_env

OWNER = "team:analytics-engineering"
_VENV_BIN = str(Path(sys.prefix) / "bin")
# dagster-dbt starts this instead of dbt: it ties dbt to the run process (see the module), then execs dbt.
DBT_WRAPPER = Path(__file__).with_name("dbt_child.py")
DBT_ARTIFACTS_KEPT_DEFAULT = 5
# The folder dagster-dbt gives each invocation under target/: <op name>-<run id[:7]>-<random 7 hex>.
_INVOCATION_DIR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*-[0-9a-f]{7}-[0-9a-f]{7}$")


def dbt_executable() -> str:
    """The dbt installed beside this interpreter, so a venv works without being activated."""
    for candidate in (Path(sys.prefix) / "bin" / "dbt", Path(sys.executable).with_name("dbt")):
        if candidate.exists():
            return str(candidate)
    return "dbt"


def dbt_artifacts_kept_from_env() -> int:
    return int(os.environ.get("SPENDWISE_DBT_ARTIFACTS_KEPT") or DBT_ARTIFACTS_KEPT_DEFAULT)


def prune_dbt_artifacts(target_dir: Path, keep: int, current: Path | None = None) -> list[Path]:
    """Delete all but the `keep` newest per-invocation folders in `target_dir`; returns what went.

    Only folders named like dagster-dbt's invocation folders are touched, never `current` (the
    invocation that just ran) nor the files beside them (the manifest the definitions load,
    partial_parse.msgpack).
    """
    folders = [p for p in target_dir.iterdir() if p.is_dir() and _INVOCATION_DIR.match(p.name)]
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    kept = set(folders[: max(keep, 1)]) | ({current} if current else set())
    removed = []
    for folder in folders:
        if folder not in kept:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def dbt_environment(url: WarehouseUrl) -> dict[str, str]:
    """What a dbt process needs on top of the caller's environment: the profile variables for `url`,
    this interpreter's bin folder on PATH (so the venv works without being activated), and what
    the wrapper (`DBT_WRAPPER`) needs to tie dbt to this process and exec the real dbt."""
    path = os.environ.get("PATH", "")
    if _VENV_BIN not in path.split(os.pathsep):
        path = _VENV_BIN + os.pathsep + path if path else _VENV_BIN
    return {
        **url.dbt_env(), "PATH": path,
        "SPENDWISE_DBT_EXECUTABLE": dbt_executable(), "SPENDWISE_DBT_PARENT_PID": str(os.getpid()),
    }


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    """`extra` in os.environ while dagster-dbt builds and starts a dbt invocation, then restored.

    dagster-dbt copies os.environ into the dbt subprocess and initialises the adapter in-process
    from profiles.yml, so the variables must be present during the call; runs execute their dbt
    step alone in the process (in-process executor or one subprocess per step), so nothing else
    reads them meanwhile.
    """
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@cache
def dbt_project() -> DbtProject:
    from dagster_dbt.dbt_project import using_dagster_dev

    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR, target=get_settings().dbt_target)
    if using_dagster_dev():
        # What project.prepare_if_dev() does, with our dbt executable and the profile variables:
        # dagster-dbt's own preparer looks for `dbt` on PATH, which `make dev` need not have.
        prepare_manifest(force=True)
    return project


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing (or `force`); returns the manifest path."""
    manifest = DBT_DIR / "target" / "manifest.json"
    if force or not manifest.exists():
        proc = subprocess.run(
            [str(DBT_WRAPPER), "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)],
            capture_output=True, text=True, env={**os.environ, **dbt_environment(get_settings().warehouse)},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"dbt parse failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return manifest


class SpendwiseDbtTranslator(DagsterDbtTranslator):
    """Groups follow the dbt folder (staging, intermediate, marts, attribution); kinds name the warehouse."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: "DbtProject | None") -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec.replace_attributes(group_name="raw").merge_attributes(
                kinds={get_settings().warehouse.kind}
            )
        fqn = props.get("fqn", [])
        group = "reference" if props["resource_type"] == "seed" else (fqn[1] if len(fqn) > 2 else "marts")
        return spec.replace_attributes(group_name=group, owners=[OWNER]).merge_attributes(
            kinds={get_settings().warehouse.kind}
        )


TRANSLATOR = SpendwiseDbtTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
)


def _manifest_path() -> Path:
    path = dbt_project().manifest_path
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest {path} is missing: run `make manifest` (or `spendwise refresh`, which prepares it)"
        )
    return path


class DbtModelConfig(Config):
    """Run config for the dbt models, passed to dbt as --vars. Validated before dbt starts."""

    journey_lookback_days: int = Field(30, description="touches this many days before a conversion count")
    late_arrival_days: int = Field(
        3, description="incremental journeys: users with raw rows this many days before the newest one are "
        "recomputed on every run, besides the changes the loaders log (dbt var late_arrival_days)")
    full_refresh: bool = Field(
        False, description="rebuild the incremental dbt models from all raw rows (dbt var "
        "spendwise_full_refresh); `spendwise refresh --full-refresh`")
    time_decay_half_life_days: float = Field(7.0, description="time_decay: a touch this much older gets half")
    position_first_weight: float = Field(0.4, description="position_based (U): first touch")
    position_last_weight: float = Field(0.4, description="position_based (U): last touch")
    position_middle_weight: float = Field(0.2, description="position_based (U): shared by the middle touches")
    w_first_weight: float = Field(0.3, description="w_shaped: first touch")
    w_lead_weight: float = Field(0.3, description="w_shaped: lead-creation touch (first click/visit)")
    w_last_weight: float = Field(0.3, description="w_shaped: last touch")
    w_rest_weight: float = Field(0.1, description="w_shaped: shared by the other touches")

    def validate_values(self) -> None:
        """Raise ValueError naming every value that is not allowed."""
        problems = []
        if self.journey_lookback_days < 1:
            problems.append(f"journey_lookback_days={self.journey_lookback_days}: must be a whole number >= 1")
        if self.late_arrival_days < 0:
            problems.append(f"late_arrival_days={self.late_arrival_days}: must be a whole number >= 0")
        if not self.time_decay_half_life_days > 0:
            problems.append(f"time_decay_half_life_days={self.time_decay_half_life_days}: must be > 0 (days)")
        for model, names in (
            ("position_based", ("position_first_weight", "position_last_weight", "position_middle_weight")),
            ("w_shaped", ("w_first_weight", "w_lead_weight", "w_last_weight", "w_rest_weight")),
        ):
            values = {n: getattr(self, n) for n in names}
            problems += [f"{n}={v}: weights must be between 0 and 1" for n, v in values.items() if not 0 <= v <= 1]
            if abs(sum(values.values()) - 1) > 1e-9:
                listed = " + ".join(f"{n}={v}" for n, v in values.items())
                problems.append(f"{model} weights must sum to 1, got {listed} = {sum(values.values()):.6g}")
        if problems:
            raise ValueError("invalid dbt model config:\n  " + "\n  ".join(problems))

    def dbt_vars(self) -> dict[str, float | int | bool]:
        self.validate_values()
        return {
            "journey_lookback_days": self.journey_lookback_days,
            "late_arrival_days": self.late_arrival_days,
            # The incremental models (int_journeys, touchpoint_credit) rebuild everything by themselves
            # after a wholesale raw load; this forces it (dbt_project/macros/incremental_journeys.sql).
            # A var, not dbt's --full-refresh, which would also recreate every table and view (on
            # PostgreSQL the views that depend on each other and the BI grants stop that).
            "spendwise_full_refresh": self.full_refresh,
            "attribution_time_decay_half_life_days": self.time_decay_half_life_days,
            "attribution_position_first_weight": self.position_first_weight,
            "attribution_position_last_weight": self.position_last_weight,
            "attribution_w_first_weight": self.w_first_weight,
            "attribution_w_lead_weight": self.w_lead_weight,
            "attribution_w_last_weight": self.w_last_weight,
        }


@dbt_assets(manifest=_manifest_path(), project=dbt_project(), dagster_dbt_translator=TRANSLATOR)
def spendwise_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, config: DbtModelConfig):
    """Builds the dbt models and runs their tests; a failing error-severity test fails the step."""
    dbt_vars = config.dbt_vars()  # invalid weights stop the step here, before dbt runs
    invocation = dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context)
    try:
        yield from invocation.stream()
    finally:
        # Each invocation writes ~5 MB of artifacts in a folder of its own: keep the last few.
        removed = prune_dbt_artifacts(
            invocation.target_path.parent, getattr(dbt, "artifacts_kept", DBT_ARTIFACTS_KEPT_DEFAULT),
            current=invocation.target_path,
        )
        if removed:
            context.log.info(f"pruned {len(removed)} old dbt artifact folder(s) in {invocation.target_path.parent}")


class SpendwiseDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource plus the warehouse it builds in.

    `warehouse_url` (an EnvVar in production, so no password shows in the UI) decides the profile
    target and the connection variables every dbt invocation of this resource gets.
    """

    warehouse_url: str = Field(default_factory=warehouse_url_from_env, description="SPENDWISE_WAREHOUSE_URL")
    artifacts_kept: int = Field(
        default_factory=dbt_artifacts_kept_from_env,
        description="per-invocation artifact folders kept under dbt_project/target (SPENDWISE_DBT_ARTIFACTS_KEPT, "
        "default 5); older ones are deleted after each dbt step",
    )

    def setup_for_execution(self, context) -> None:
        super().setup_for_execution(context)
        # A dbt step in a subprocess of the run worker (multiprocess executor) dies with the worker.
        tie_to_refresh_owner(WarehouseUrl.parse(self.warehouse_url), context.run_id)

    def cli(self, args, **kwargs):
        url = WarehouseUrl.parse(self.warehouse_url)
        if url.kind == "spark":  # the dbt process opens the Derby metastore: this process's reads let go first
            from core.spark import release_kept_session

            release_kept_session()
        with _environment(dbt_environment(url)):
            return super().cli(args, **kwargs)


def dbt_resource(url: WarehouseUrl | None = None, warehouse_url: Any = None) -> SpendwiseDbtCliResource:
    """The dbt resource for `url` (default: the settings' warehouse); `warehouse_url` may be an EnvVar."""
    url = url or get_settings().warehouse
    return SpendwiseDbtCliResource(
        project_dir=dbt_project(),
        profiles_dir=str(DBT_DIR),
        target=url.dbt_target,
        dbt_executable=str(DBT_WRAPPER),
        warehouse_url=warehouse_url if warehouse_url is not None else url.url,
    )
