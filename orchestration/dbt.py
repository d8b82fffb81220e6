"""dbt wiring: the cached DbtProject, the translator that names groups and kinds once, the dbt assets.

No dbt command runs at import: the manifest is prepared by `make manifest`, the CLI and the tests.
"""


import json
import os
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetSpec, Config
from pydantic import Field
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.settings import DBT_DIR, get_settings

OWNER = "team:analytics-engineering"

# dagster-dbt's own helpers (prepare_if_dev under `dagster dev`) look for `dbt` on PATH; make the
# one installed beside this interpreter findable even when the venv is not activated.
_VENV_BIN = str(Path(sys.prefix) / "bin")
if _VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VENV_BIN + os.pathsep + os.environ.get("PATH", "")


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR, target=get_settings().dbt_target)
    project.prepare_if_dev()
    return project


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing (or `force`); returns the manifest path."""
    manifest = DBT_DIR / "target" / "manifest.json"
    if force or not manifest.exists():
        get_settings()  # exports the dbt env vars profiles.yml reads
        proc = subprocess.run(
            [dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)],
            capture_output=True, text=True,
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

    def dbt_vars(self) -> dict[str, float | int]:
        self.validate_values()
        return {
            "journey_lookback_days": self.journey_lookback_days,
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
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()


def dbt_executable() -> str:
    """The dbt installed beside this interpreter, so a venv works without being activated."""
    for candidate in (Path(sys.prefix) / "bin" / "dbt", Path(sys.executable).with_name("dbt")):
        if candidate.exists():
            return str(candidate)
    return "dbt"


def dbt_resource(target: str | None = None) -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project(),
        profiles_dir=str(DBT_DIR),
        target=target or get_settings().dbt_target,
        dbt_executable=dbt_executable(),
    )
