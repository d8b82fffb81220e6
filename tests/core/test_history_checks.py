"""A failed check publishes nothing, and so appends no history: through the real check-then-publish path."""

import pandas as pd
import pytest
from dagster import Config, asset, materialize

from assets.publishing import check_and_publish, gx_specs, invariant_specs
from assets.resources import Warehouse
from core.checks import CheckOutcome
from core.history import history_runs, read_history


class Diagnostics(Config):
    valid: bool = True


# Named as the registry's owner of mmm_diagnostics, so publishing reports its checks on this asset.
@asset(name="media_mix_model", check_specs=invariant_specs("media_mix_model", {"mmm_fit_ok": "the fit is usable"})
       + [s for s in gx_specs("media_mix_model") if s.name == "gx_mmm_diagnostics"])
def diagnostics(context, config: Diagnostics, warehouse: Warehouse):
    frame = pd.DataFrame({"metric": ["r2", "n_days"], "value": [0.8, 180.0], "detail": ["fit", "days"]})
    yield from check_and_publish(
        context, warehouse, {"mmm_diagnostics": frame},
        invariants={"media_mix_model": [CheckOutcome("mmm_fit_ok", config.valid, "usable" if config.valid
                                                     else "simulated: the fit is not usable")]},
    )


@pytest.fixture
def warehouse(engine_url) -> Warehouse:
    return Warehouse(url=engine_url)


def test_a_failed_check_appends_no_history_rows(warehouse):
    asset_def = diagnostics
    good = materialize([asset_def], resources={"warehouse": warehouse})
    assert good.success
    bad = materialize([asset_def], resources={"warehouse": warehouse}, raise_on_error=False,
                      run_config={"ops": {"media_mix_model": {"config": {"valid": False}}}})
    assert not bad.success
    assert [run for run, _ in history_runs(warehouse.client, "mmm_diagnostics")] == [good.run_id]
    assert set(read_history(warehouse.client, "mmm_diagnostics")["run_id"]) == {good.run_id}
    assert set(warehouse.read_table("predictions", "mmm_diagnostics")["run_id"]) == {good.run_id}
