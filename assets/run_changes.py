"""What changed since the last run: every headline number against its previous publication in the prediction
history, with whether the move is beyond its interval and the likely cause, shown as a markdown table."""

from dagster import AssetExecutionContext, AssetKey, Failure, MetadataValue, asset

from assets.common import asset_description, python_kinds, table_metadata
from assets.publishing import check_and_publish, gx_specs
from assets.resources import Warehouse
from core import registry
from ml.run_changes import HEADLINES

GROUP = "history"
MAX_SHOWN = 25  # moves listed in the UI; the table holds them all
CONTEXT_TABLES = ("ml_roi_timeseries", "mmm_diagnostics", "mmm_channel_roas", "ml_roi_forecast")


@asset(
    deps=sorted({AssetKey(registry.table(h.table).asset) for h in HEADLINES} | {AssetKey("roi_timeseries")},
                key=lambda k: k.to_user_string()),
    group_name=GROUP,
    kinds=python_kinds(),
    description=asset_description(
        "run_changes", "Per channel and headline number (attribution share per model, media-mix ROAS, forecast ROI, "
        "recommended spend): this run against the previous one, noise or signal, and the likely cause."),
    metadata=table_metadata("run_changes"),
    check_specs=gx_specs("run_changes"),
)
def run_changes(context: AssetExecutionContext, warehouse: Warehouse):
    from core.history import history_runs, read_history
    from ml.run_changes import FIRST_RUN, run_changes as compare, run_inputs

    client = warehouse.serving_client  # the history lives with the prediction tables
    current, previous, runs_seen = {}, {}, set()
    for headline in HEADLINES:
        runs = [run for run, _ in history_runs(client, headline.table)]
        if not runs:
            continue
        current[headline.table] = read_history(client, headline.table, run_ids=runs[:1])
        previous[headline.table] = read_history(client, headline.table, run_ids=runs[1:2]) if len(runs) > 1 else None
        runs_seen.update(runs[:2])
    if not current:
        raise Failure("no headline table has a history yet (channel_attribution, mmm_channel_roas, ml_roi_forecast, "
                      "ml_budget_recommendation): materialize them first, their publication writes the history")

    def rows(table: str, run: str, **kwargs):
        frame = read_history(client, table, run_ids=[run], **kwargs)
        return frame if len(frame) else None

    inputs = {run: run_inputs(
        run,
        rows("ml_roi_timeseries", run, columns=["date", "channel", "roi", "conversions", "is_forecast"],
             where="NOT is_forecast"),
        rows("mmm_diagnostics", run), rows("mmm_channel_roas", run), rows("ml_roi_forecast", run),
    ) for run in sorted(runs_seen)}
    table = compare(current, previous, inputs)
    moves = table[table["matters"]].copy()
    moves["change"] = moves["change"].round(4)
    shown = moves[["number", "model", "channel", "previous_value", "value", "change", "likely_cause"]].head(MAX_SHOWN)
    first = table["previous_run_id"].isna().all()
    summary = (FIRST_RUN if first else
               f"{len(moves)} of {len(table)} numbers moved beyond their interval (or by 10% without one)")
    text = shown.fillna("").round(4).to_markdown(index=False) if len(shown) else summary
    if len(moves) > MAX_SHOWN:
        text += f"\n\n… {len(moves) - MAX_SHOWN} more in predictions.run_changes"
    yield from check_and_publish(
        context, warehouse, {"run_changes": table},
        metadata={"run_changes": {
            "summary": summary, "moves_that_matter": len(moves),
            "moves": MetadataValue.md(text),
            "compared_runs": MetadataValue.json({h.number: [current[h.table]["run_id"].iloc[0],
                                                            None if previous.get(h.table) is None
                                                            else previous[h.table]["run_id"].iloc[0]]
                                                 for h in HEADLINES if h.table in current}),
        }},
    )
