"""Rule-based attribution parameters: validated in run config before dbt starts, passed as --vars."""

import pytest
from dagster import instance_for_test

from orchestration.dbt import DbtModelConfig
from orchestration.schedules import REFRESH_JOB_NAME
from assets.resources import Warehouse
from tests.conftest import load_demo


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"position_first_weight": 0.5}, "position_based weights must sum to 1, got position_first_weight=0.5"),
        ({"w_rest_weight": -0.1, "w_first_weight": 0.5}, "w_rest_weight=-0.1: weights must be between 0 and 1"),
        ({"time_decay_half_life_days": 0}, "time_decay_half_life_days=0.0: must be > 0 (days)"),
        ({"journey_lookback_days": 0}, "journey_lookback_days=0: must be a whole number >= 1"),
    ],
)
def test_invalid_values_are_named_with_what_is_allowed(overrides, message):
    with pytest.raises(ValueError) as err:
        DbtModelConfig(**overrides).dbt_vars()
    assert message in str(err.value)


def test_defaults_map_to_the_dbt_vars():
    assert DbtModelConfig().dbt_vars() == {
        "journey_lookback_days": 30, "late_arrival_days": 3, "spendwise_full_refresh": False,
        "attribution_time_decay_half_life_days": 7.0,
        "attribution_position_first_weight": 0.4, "attribution_position_last_weight": 0.4,
        "attribution_w_first_weight": 0.3, "attribution_w_lead_weight": 0.3, "attribution_w_last_weight": 0.3,
    }


def test_a_run_with_invalid_weights_fails_before_dbt_touches_the_warehouse(duckdb_url, demo_data, dbt_manifest):
    from orchestration.definitions import build_definitions

    load_demo(duckdb_url, demo_data)
    job = build_definitions(duckdb_url).resolve_job_def(REFRESH_JOB_NAME)
    with instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"spendwise_dbt_models": {"config": {"w_lead_weight": 0.6}}}},
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = failure.message + "".join(c.message for c in (failure.cause,) if c)
    assert "w_shaped weights must sum to 1" in text
    assert Warehouse(url=duckdb_url).row_counts("analytics") == {}
