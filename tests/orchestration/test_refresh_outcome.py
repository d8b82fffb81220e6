"""What `spendwise refresh` reports and exits with: warnings (stale data) apart from failures, a failed
dbt contract test in words, and the as-of day of the marts (the data's last complete day)."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestration.check_words import explain_test, load_manifest
from orchestration.refresh import CheckEvaluation, RefreshOutcome, _run_lines
from tests.conftest import LIGHT_RUN_CONFIG_FILE

DUPLICATE_TEST = "source_unique_combination_raw_ad_performance_daily_date__channel__campaign_id"


def _stale(table: str) -> CheckEvaluation:
    return CheckEvaluation(
        asset=f"raw/{table}", name=f"{table}_volume_and_freshness", passed=False, blocking=True, severity="WARN",
        description=f"raw.{table}: newest day 2026-11-02, 28 days old (stale: older than 2 days; load a newer export)",
    )


def _outcome(*checks: CheckEvaluation, success: bool = True, failed_steps: tuple[str, ...] = ()) -> RefreshOutcome:
    passing = CheckEvaluation(asset="analytics/fct_channel_daily", name="gx_fct_channel_daily", passed=True,
                              blocking=True, severity="ERROR")
    return RefreshOutcome(run_id="r1", success=success, seconds=1.0, materialized=["a"],
                          failed_steps=list(failed_steps), checks=[passing, *checks])


def test_warnings_alone_are_ok_and_listed_as_warnings():
    outcome = _outcome(_stale("ad_performance_daily"), _stale("touchpoints"), _stale("conversions"))
    assert outcome.ok
    assert len(outcome.warnings) == 3 and outcome.failures == []
    text = "\n".join(_run_lines(outcome))
    assert "Checks: 1 passed, 3 warnings, 0 failed" in text
    assert "FAILED" not in text and "Failures" not in text
    assert ("WARNING [warning] raw/ad_performance_daily :: ad_performance_daily_volume_and_freshness: "
            "raw.ad_performance_daily: newest day 2026-11-02, 28 days old") in text
    assert "Result: published; exit code 0 (with warnings)" in text


def test_a_blocking_error_check_or_a_failed_step_is_a_failure():
    error = CheckEvaluation(asset="raw/ad_performance_daily", name=DUPLICATE_TEST, passed=False, blocking=True,
                            severity="ERROR", explanation="ad_performance_daily has 3 (date, channel, campaign_id) ...")
    outcome = _outcome(_stale("touchpoints"), error, success=False, failed_steps=("spendwise_dbt_models",))
    assert not outcome.ok
    assert outcome.failures == [error] and [c.name for c in outcome.warnings] == ["touchpoints_volume_and_freshness"]
    text = "\n".join(_run_lines(outcome))
    warnings_at, failures_at = text.index("Warnings (1"), text.index("Failures (1 check, 1 step")
    assert warnings_at < failures_at
    assert f"FAILED [blocking] raw/ad_performance_daily :: {DUPLICATE_TEST}: ad_performance_daily has 3" in text
    assert "FAILED step spendwise_dbt_models" in text
    assert "exit code 1" in text
    # a failed step alone, every check passing, is a failure too
    assert not _outcome(success=False, failed_steps=("x",)).ok
    # an ERROR check that blocks nothing is listed, but as a warning
    loose = CheckEvaluation(asset="a", name="n", passed=False, blocking=False, severity="ERROR", description="d")
    assert _outcome(loose).ok and "WARNING [error, not blocking] a :: n: d" in "\n".join(_run_lines(_outcome(loose)))


def test_contract_tests_read_in_words(dbt_manifest):
    manifest = load_manifest(Path(dbt_manifest))
    ids = {n["name"]: uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "test"}
    assert explain_test(manifest, ids[DUPLICATE_TEST], 1460) == (
        "ad_performance_daily has 1,460 (date, channel, campaign_id) combinations that appear on more than one row; "
        "each campaign (channel, campaign_id) may have one row per day: aggregate the export by date, channel and campaign "
        "(sum spend, impressions, clicks, conversions, revenue)"
    )
    # declared without words: a generic sentence from the test's kind and arguments
    assert explain_test(manifest, ids["source_non_negative_raw_ad_performance_daily_spend"], 2) == (
        "ad_performance_daily has 2 rows with a negative spend; spend is never negative: correct or remove those rows"
    )
    assert explain_test(manifest, "model.spendwise.fct_channel_daily", 1) == ""
    # failed with no failing row: dbt could not run the test (seen when DuckDB refused a setting),
    # which must not read as "has 0 combinations that appear on more than one row"
    assert explain_test(manifest, ids[DUPLICATE_TEST], 0) == (
        f"ad_performance_daily was not checked: dbt could not run the test `{DUPLICATE_TEST}` (an error, not a rule "
        "broken by the data); the failed dbt step's log says why"
    )


# --- real runs -----------------------------------------------------------------------------------------


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home"),
            "SPENDWISE_WAREHOUSE_URL": url, "SPENDWISE_CHARTS_DIR": str(tmp_path / "charts"),
            "SPENDWISE_RUN_CONFIG": str(LIGHT_RUN_CONFIG_FILE)}


def _refresh(tmp_path: Path, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh"], capture_output=True, text=True,
                          env=_env(tmp_path, url), timeout=1500)


@pytest.fixture(scope="module")
def stale_data():
    from ml.synthetic import generate_demo_data

    end = datetime.now(timezone.utc).date() - timedelta(days=28)
    return end, generate_demo_data(scale=0.05, days=200, end=end, seed=11)


@pytest.mark.slow
def test_refresh_on_data_ending_weeks_ago_publishes_exits_0_and_warns_with_the_age(tmp_path, dbt_manifest, stale_data):
    import pandas as pd

    from assets.resources import Warehouse
    from core import registry
    from tests.conftest import load_demo

    end, data = stale_data
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, data)
    proc = _refresh(tmp_path, url)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert f"predictions: {len(registry.TABLES)} tables" in out
    assert "FAILED" not in out
    assert "Failures" not in out
    warning = (f"WARNING [warning] raw/ad_performance_daily :: ad_performance_daily_volume_and_freshness: "
               f"raw.ad_performance_daily: newest day {end:%Y-%m-%d}, 28 days old")
    assert warning in out, out[-3000:]
    assert "Result: published; exit code 0 (with warnings)" in out
    # the run took the ops' settings of SPENDWISE_RUN_CONFIG's file, as recorded in DAGSTER_HOME
    from dagster import DagsterInstance

    from orchestration.run_config import read_run_config

    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        (run,) = instance.get_runs()
    assert run.run_config["ops"] == read_run_config(LIGHT_RUN_CONFIG_FILE)["ops"], run.run_config
    # the marts end on the data's last day, not padded with zero days up to today
    wh = Warehouse(url=url)
    for table in ("fct_channel_daily", "fct_revenue_daily"):
        last = wh.read_sql(f"select max(date) as d from analytics.{table}")["d"].iloc[0]
        assert pd.Timestamp(last).date() == end, table


@pytest.mark.slow
def test_marts_leave_out_today_the_partial_day(tmp_path, dbt_manifest):
    """Data that runs into today (UTC): the reporting calendar, which the media mix and the forecasts read,
    ends yesterday, the last complete day; fct_campaign_daily keeps every row as delivered."""
    import pandas as pd

    from assets.resources import Warehouse
    from core.settings import DBT_DIR, WarehouseUrl
    from ml.synthetic import generate_demo_data
    from tests.conftest import load_demo

    today = datetime.now(timezone.utc).date()
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, generate_demo_data(scale=0.02, days=60, end=today, seed=5))
    dbt = str(Path(sys.executable).with_name("dbt"))
    env = {**os.environ, **WarehouseUrl.parse(url).dbt_env()}
    built = subprocess.run(
        [dbt, "run", "--select", "+fct_channel_daily", "+fct_revenue_daily", "--profiles-dir", str(DBT_DIR),
         "--project-dir", str(DBT_DIR), "--target-path", str(tmp_path / "t"), "--log-path", str(tmp_path / "t")],
        cwd=DBT_DIR, env=env, capture_output=True, text=True, timeout=900,
    )
    assert built.returncode == 0, built.stdout[-3000:]
    wh = Warehouse(url=url)
    last = {t: pd.Timestamp(wh.read_sql(f"select max(date) as d from analytics.{t}")["d"].iloc[0]).date()
            for t in ("fct_campaign_daily", "fct_channel_daily", "fct_revenue_daily")}
    # dbt ran on today, or on the next UTC day when midnight passed meanwhile: then the data's last
    # day (today) is already complete. Without a day change this is one exact expectation.
    expected = [
        {"fct_campaign_daily": today, "fct_channel_daily": min(today, day - timedelta(days=1)),
         "fct_revenue_daily": min(today, day - timedelta(days=1))}
        for day in sorted({today, datetime.now(timezone.utc).date()})
    ]
    assert last in expected, (last, expected)


@pytest.mark.slow
def test_refresh_with_repeated_campaign_days_names_the_rule_in_words_and_exits_1(tmp_path, dbt_manifest, stale_data):
    import pandas as pd

    from assets.resources import Warehouse
    from core.raw_contract import RAW_TABLES, replace_raw_tables
    from tests.conftest import load_demo

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    load_demo(url, stale_data[1])
    wh = Warehouse(url=url)
    raw = {name: wh.read_table("raw", name) for name in RAW_TABLES}
    ads = raw["ad_performance_daily"]
    raw["ad_performance_daily"] = pd.concat([ads, ads.head(7)], ignore_index=True)
    replace_raw_tables(wh, raw)  # past the loader's checks, as a hand-written ETL job could
    proc = _refresh(tmp_path, url)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:] + proc.stderr[-3000:]
    assert (f"FAILED [blocking] raw/ad_performance_daily :: {DUPLICATE_TEST}: ad_performance_daily has 7 "
            "(date, channel, campaign_id) combinations that appear on more than one row; each campaign "
            "(channel, campaign_id) may have one row per day: aggregate the export by date, channel and campaign") in out, out[-3000:]
    assert out.index("Warnings (") < out.index("Failures (")
    assert "Result: not everything was published; exit code 1" in out


BAD_RUN_CONFIGS = {  # file text -> what the one line must say after "run config <file>: "
    None: "no such file (set by --config or SPENDWISE_RUN_CONFIG)",
    "ops: {media_mix_model: [unclosed\n": "not valid YAML at line 2",
    "loggers: {console: {}}\n": "only ops: can be set here (the refresh sets loggers and resources itself); "
                                "remove loggers",
    "- media_mix_model\n": "expected a mapping with one key, ops:, got list",
    "ops:\n  media_mix_modle: {config: {n_bootstrap: 20}}\n": "ops: unknown entry 'media_mix_modle' (did you mean "
                                                            "'media_mix_model'?)",
    "ops:\n  media_mix_model: {config: {n_bootstrap: many}}\n": "ops.media_mix_model.config.n_bootstrap: ",
}


def test_a_run_config_file_the_refresh_cannot_use_is_refused_naming_the_file_and_the_entry(tmp_path, dbt_manifest):
    from orchestration.refresh import refresh_run_config
    from orchestration.run_config import RunConfigError

    for i, (text, said) in enumerate(BAD_RUN_CONFIGS.items()):
        path = tmp_path / f"bad{i}.yaml"
        if text is not None:
            path.write_text(text)
        with pytest.raises(RunConfigError) as raised:
            refresh_run_config(path)
        assert str(raised.value).startswith(f"run config {path}: "), str(raised.value)
        assert said in str(raised.value), (text, str(raised.value))
    assert refresh_run_config(LIGHT_RUN_CONFIG_FILE)["ops"]["media_mix_model"] == {"config": {"n_bootstrap": 20}}

    # The commands: exit code 2 and that one line, before anything runs (no Dagster home, no demo data).
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    bad = tmp_path / "bad5.yaml"
    refresh = subprocess.run([sys.executable, "-m", "orchestration.cli", "refresh", "--config", str(bad)],
                             capture_output=True, text=True, env=_env(tmp_path, url), timeout=300)
    env = {**_env(tmp_path, url), "SPENDWISE_RUN_CONFIG": str(tmp_path / "bad1.yaml")}
    run = subprocess.run([sys.executable, "-m", "orchestration.cli", "run", "--scale", "0.02", "--days", "60"],
                         capture_output=True, text=True, env=env, timeout=300)
    for command, proc, path in (("refresh", refresh, bad), ("run", run, tmp_path / "bad1.yaml")):
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert proc.stderr.startswith(f"spendwise {command}: run config {path}: "), proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "warehouse.duckdb").exists()
