"""Skill of ml.forecasting against its naive baselines, before and after issue 13, on two data families.

Run: .venv/bin/python benchmarks/bench_forecast_skill.py [--seeds 42 43] [--n-jobs 2] [--out docs/forecast_skill.md]

Settings (trend prior, yearly-season threshold) were chosen on seeds 101 and 102 of both families; the
report seeds are 42 and 43.

"before" is the forecast as it was (Prophet, its default trend flexibility, country holidays only, no
fallback): ``retail_peaks=False, changepoint_prior_scale=0.05``, scored by its own model errors. "after"
is today's default, scored as published (after the fallback to the better naive baseline). Both are
backtested on the same folds and days as the naive baselines: 30-day horizon, 3 rolling origins.
Families: the demo (``ml.synthetic.generate_demo_data``, summed per channel like fct_channel_daily) and
``benchmarks.forecast_families`` (channels, seasons and noise of its own).
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ml.forecasting as forecasting
from ml.forecasting import (
    CHANNEL_AGREEMENT_MIN_SERIES, CHANNEL_AGREEMENT_T, FUTURE_SPEND, LEVEL_WINDOW_DAYS, METRICS, REVERSION, REVERTING_RECENT_DAYS, SELECTION_MARGIN, SELECTION_ORIGINS,
    forecast_channel_metrics, naive_forecast, skill_score,
)
from ml.synthetic import generate_demo_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_forecast_oracle import score_demo as oracle_scores  # noqa: E402
from forecast_families import generate_forecast_family  # noqa: E402

# The held-out figures of the report seeds as docs/forecast_skill.md recorded them (history, not measured here):
# median skill on days and on 30-day totals, series below 0 on days and on totals, series, and the mean over series
# of the skill on days and on totals, each clipped at -1 (from its per-series held-out table). At revision 4929cde,
# before the choice margin:
EARLIER_HELD_OUT = {
    "demo, seed 42": (0.122, 0.141, 14, 15, 48, -0.012, -0.052),
    "demo, seed 43": (0.000, 0.000, 19, 19, 48, -0.083, -0.015),
    "second family, seed 42": (0.000, 0.000, 7, 6, 36, 0.018, 0.102),
    "second family, seed 43": (0.000, 0.296, 8, 3, 36, 0.020, 0.327),
}
# At revision eb0822e, with the choice margin and before the channel agreement:
MARGIN_HELD_OUT = {
    "demo, seed 42": (0.099, 0.112, 9, 10, 48, 0.054, 0.036),
    "demo, seed 43": (0.000, 0.000, 17, 15, 48, -0.075, 0.000),
    "second family, seed 42": (0.000, 0.000, 4, 3, 36, -0.005, 0.055),
    "second family, seed 43": (0.000, 0.000, 2, 2, 36, 0.021, 0.122),
}
BEFORE = {"retail_peaks": False, "changepoint_prior_scale": 0.05, "fallback": False, "calibrate": False}
HELD_OUT_DAYS = 30


def demo_daily(seed: int) -> pd.DataFrame:
    campaigns = generate_demo_data(scale=1.0, seed=seed, days=730).ad_performance_daily
    return campaigns.groupby(["date", "channel"], as_index=False)[list(METRICS)].sum()


FAMILIES = {"demo": demo_daily, "second family": lambda seed: generate_forecast_family(seed=seed, days=730)}


def score(daily: pd.DataFrame, n_jobs: int) -> tuple[pd.DataFrame, dict[str, float]]:
    timings = {}
    started = time.perf_counter()
    before = forecast_channel_metrics(daily, n_jobs=n_jobs, **BEFORE)
    timings["before"] = time.perf_counter() - started
    started = time.perf_counter()
    after = forecast_channel_metrics(daily, n_jobs=n_jobs)
    timings["after"] = time.perf_counter() - started
    timings["after_cpu"] = after.timings["series_cpu"]
    timings["before_cpu"] = before.timings["series_cpu"]
    timings["choice"] = after.timings["choice"]
    old = before.skill.set_index(["channel", "metric"])
    new = after.skill.set_index(["channel", "metric"])
    table = pd.DataFrame({
        "naive": new["naive_method"].str.replace("naive_", ""),
        "naive err": new["naive_mape"],
        "before err": old["model_mape"],
        "before skill": old["skill"],
        "after err": new["published_mape"],
        "after skill": new["published_skill"],
        "method": new["method"],
        "naive total err": new["naive_total_error"],
        "before total skill": old["total_skill"],
        "after total skill": new["published_total_skill"],
        "prophet err": new["prophet_mape"],
        "level err": new["level_weekday_mape"],
        "level+recent err": new["level_recent_mean_mape"],
        "reverting err": new["level_reverting_mape"],
        "spend reg err": new["spend_regression_mape"],
        "coverage before": new["backtest_coverage"],
        "interval factor": new["interval_factor"],
    })
    return table, timings


def held_out(daily: pd.DataFrame, n_jobs: int) -> pd.DataFrame:
    """Refit on all but the last HELD_OUT_DAYS days and score what would have been published on them.

    Per series: the published forecast's WAPE and the better naive baseline's (as chosen on the backtest) on the
    held-out days with spend, and the share of those days inside the 95% interval before and after the calibration.
    These days took no part in choosing a model or the calibration factor.
    """
    last = daily["date"].max()
    cutoff = last - pd.Timedelta(days=HELD_OUT_DAYS)
    fc = forecast_channel_metrics(daily[daily["date"] <= cutoff], horizon_days=HELD_OUT_DAYS, n_jobs=n_jobs)
    future = daily[daily["date"] > cutoff]
    skill = fc.skill.set_index(["channel", "metric"])
    rows = []
    for (channel, metric), scores in skill.iterrows():
        rows_fc = fc.frame[(fc.frame["channel"] == channel) & (fc.frame["metric"] == metric) & fc.frame["is_forecast"]]
        # A day without a row had no spend (the demo's mart has rows for live days only).
        actual_rows = future[future["channel"] == channel].set_index("date").reindex(rows_fc["date"])
        live = actual_rows["spend"].fillna(0.0).to_numpy() > 0
        actual = actual_rows[metric].fillna(0.0).to_numpy(dtype=float)
        history = daily[(daily["date"] <= cutoff) & (daily["channel"] == channel) & (daily["spend"] > 0)]
        weekdays = history["date"].dt.day_of_week.to_numpy()
        naive = naive_forecast(history[metric].to_numpy(float), weekdays,
                               pd.DatetimeIndex(rows_fc["date"]).day_of_week.to_numpy(), scores["naive_method"])
        point, lower, upper = (rows_fc[c].to_numpy() for c in ("yhat", "yhat_lower", "yhat_upper"))
        raw_lower, raw_upper = fc.uncalibrated_intervals[(channel, metric)]
        a = actual[live]
        rows.append({
            "channel": channel, "metric": metric, "method": scores["method"],
            "held-out skill": skill_score(np.abs(point[live] - a).sum() / a.sum(),
                                          np.abs(naive[live] - a).sum() / a.sum()) if a.sum() > 0 else np.nan,
            "held-out total skill": skill_score(abs(point[live].sum() - a.sum()) / a.sum(),
                                                abs(naive[live].sum() - a.sum()) / a.sum()) if a.sum() > 0 else np.nan,
            "coverage before": (float(np.mean((raw_lower[live] <= a) & (a <= raw_upper[live])))
                                if live.any() else np.nan),
            "coverage after": float(np.mean((lower[live] <= a) & (a <= upper[live]))) if live.any() else np.nan,
        })
    return pd.DataFrame(rows).set_index(["channel", "metric"])


# --choose: the study behind ml.forecasting's SELECTION_ORIGINS and SELECTION_MARGIN (run on the choose seeds only).
CHOOSE_SEEDS = (101, 102)
CHOOSE_WINDOWS = (30, 60, 90)  # held-out 30-day windows starting this many days before the last day
CHOOSE_FOLDS = ((30, 3), (30, 6), (30, 9), (30, 12), (30, 18), (15, 8), (15, 12), (20, 12), (10, 10), (7, 12), (45, 8))
CHOOSE_MARGINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
# Origin sets whose per-fold forecasts are kept (for the stacking, totals-margin and shrinkage rules).
PATH_FOLDS = ((30, 6), (15, 12), (10, 18), (7, 24))
CHOOSE_OPTIONS: dict = {}  # forecast_channel_metrics options of the study (--backtest-folds)


def _captured_forecast(daily: pd.DataFrame, n_jobs: int) -> dict:
    """Run forecast_channel_metrics and keep its series tasks and Prophet results (ml.forecasting._assemble wrapped)."""
    captured = {}
    original = forecasting._assemble

    def capture(histories, horizon, tasks, results, *args, **kwargs):
        captured.update(histories={h.channel: h for h in histories}, tasks=tasks, results=results)
        return original(histories, horizon, tasks, results, *args, **kwargs)

    forecasting._assemble = capture
    try:
        captured["forecast"] = forecast_channel_metrics(daily, horizon_days=HELD_OUT_DAYS, n_jobs=n_jobs,
                                                        **CHOOSE_OPTIONS)
    finally:
        forecasting._assemble = original
    return captured


def choose_series(daily: pd.DataFrame, window: int, n_jobs: int) -> list[dict]:
    """Per series of the forecast made ``window`` days before the last day: each model's per-fold errors (the simple
    models on every CHOOSE_FOLDS origin set, Prophet on its backtest folds), the better naive baseline's on the same
    folds, and the held-out WAPE of every model's and that baseline's forecast of the next 30 days with spend."""
    cutoff = daily["date"].max() - pd.Timedelta(days=window)
    captured = _captured_forecast(daily[daily["date"] <= cutoff], n_jobs)
    future = daily[(daily["date"] > cutoff) & (daily["date"] <= cutoff + pd.Timedelta(days=HELD_OUT_DAYS))]
    skill = captured["forecast"].skill.set_index(["channel", "metric"])
    rows = []
    for task, result in zip(captured["tasks"], captured["results"], strict=True):
        history = captured["histories"][task.channel]
        predictors = forecasting._predictors(task, history)
        candidates = {m: forecasting._candidate(task, p) for m, p in predictors.items()}
        naive = skill.loc[(task.channel, task.metric), "naive_method"]
        fit_dates = task.history_dates[task.fit_mask]
        row = {"channel": task.channel, "metric": task.metric, "published": skill.loc[(task.channel, task.metric),
                                                                                      "method"], "folds": {}}
        backtest = {m: (candidates[m].abs_error, candidates[m].fold_totals) for m in candidates}
        backtest[forecasting.METHOD] = (result.abs_error, result.fold_totals)
        row["backtest"] = backtest
        row["prophet"] = (forecasting._fold_errors(task, task.cutoffs, result.fold_predictions),
                          forecasting._fold_errors(task, task.cutoffs, candidates[naive].fold_predictions))
        row["paths"] = {}
        for step, origins in dict.fromkeys(CHOOSE_FOLDS + PATH_FOLDS):
            cutoffs = []
            for k in range(1, origins + 1):
                c = task.history_dates[-1] - np.timedelta64(k * step, "D")
                held = (fit_dates > c) & (fit_dates <= c + np.timedelta64(task.horizon_days, "D"))
                if (fit_dates <= c).sum() >= forecasting.MIN_HISTORY_DAYS and held.any():
                    cutoffs.append(c)
            for method, predict in predictors.items():
                if method in forecasting.NAIVE_METHODS and method != naive:
                    continue
                predictions = [predict(fit_dates <= c, (fit_dates > c) & (fit_dates <= c + np.timedelta64(
                    task.horizon_days, "D"))) for c in cutoffs]
                row["folds"][(method, step, origins)] = forecasting._fold_errors(task, cutoffs, predictions)
                if (step, origins) in PATH_FOLDS:
                    row["paths"].setdefault((step, origins), {})[method] = predictions
            if (step, origins) in PATH_FOLDS:
                row["paths"][(step, origins)]["actual"] = [
                    task.fit_values[(fit_dates > c) & (fit_dates <= c + np.timedelta64(task.horizon_days, "D"))]
                    for c in cutoffs]
        horizon = pd.DatetimeIndex(task.horizon_dates)
        actual_rows = future[future["channel"] == task.channel].set_index("date").reindex(horizon)
        live = actual_rows["spend"].fillna(0.0).to_numpy() > 0
        actual = actual_rows[task.metric].fillna(0.0).to_numpy(dtype=float)[live]
        forecasts = {m: c.horizon[live] for m, c in candidates.items()}
        forecasts[forecasting.METHOD] = result.yhat[len(task.history_dates):][live]
        row["held_out"] = {m: (np.abs(f - actual).sum(), abs(f.sum() - actual.sum())) for m, f in forecasts.items()}
        row["held_out_paths"] = {**forecasts, "actual": actual}
        row["prophet_paths"] = {"prophet": list(result.fold_predictions),
                                "naive": list(candidates[naive].fold_predictions),
                                "actual": [task.fit_values[(fit_dates > c) & (fit_dates <= c + np.timedelta64(
                                    task.horizon_days, "D"))] for c in task.cutoffs]}
        row.update(naive=naive, naive_backtest=backtest[naive], actual=actual.sum())
        rows.append(row)
    return rows


def fold_skills(row: dict, method: str, step: int = HELD_OUT_DAYS, origins: int | None = None) -> np.ndarray | None:
    """The model's per-fold skill on days against the series' better naive baseline: the simple models on ``origins``
    origins ``step`` days apart, Prophet on its backtest folds; None where the series has no such model."""
    if method == forecasting.METHOD:
        (errors, _), (reference, _) = row["prophet"]
    else:
        key = (method, step, origins or forecasting.SELECTION_ORIGINS)
        if key not in row["folds"]:
            return None
        errors, reference = row["folds"][key][0], row["folds"][(row["naive"], *key[1:])][0]
    usable = reference > 0
    return 1.0 - errors[usable] / reference[usable]


def channel_agreement(rows: list[dict], step: int = HELD_OUT_DAYS, origins: int | None = None) -> None:
    """ml.forecasting's ``_channel_agreement`` over one forecast's rows: sets ``row["agreement"]`` (model -> t)."""
    skills: dict = {}
    for row in rows:
        for method in {forecasting.METHOD, *[m for m, *_ in row["folds"] if m not in forecasting.NAIVE_METHODS]}:
            x = fold_skills(row, method, step, origins)
            if x is not None and np.isfinite(x).any():
                skills.setdefault((row["channel"], method), []).append(float(np.mean(x[np.isfinite(x)])))
    for row in rows:
        row["agreement"] = {}
        for (channel, method), values in skills.items():
            if channel == row["channel"] and len(values) >= forecasting.CHANNEL_AGREEMENT_MIN_SERIES:
                values = np.asarray(values)
                sd = values.std(ddof=1)
                row["agreement"][method] = values.mean() / (sd / np.sqrt(len(values))) if sd > 0 else (
                    np.sign(values.mean()) * np.inf)


def choose(row: dict, step: int, origins: int, margin: float, agreement_t: float | None = None) -> str:
    """ml.forecasting's choice (``_score_and_fall_back``) with other origins and margin; with ``agreement_t``, the
    channel agreement too (``row["agreement"]``, see channel_agreement)."""
    naive_error, naive_totals = row["naive_backtest"]
    best, best_margin = row["naive"], 0.0
    for method, (error, totals) in row["backtest"].items():
        if method in forecasting.NAIVE_METHODS or not error < naive_error:
            continue
        if skill_score(forecasting._total_error(totals), forecasting._total_error(naive_totals)) < 0:
            continue
        if method == forecasting.METHOD:
            (errors, fold_totals), (reference, reference_totals) = row["prophet"]
        else:
            errors, fold_totals = row["folds"][(method, step, origins)]
            reference, reference_totals = row["folds"][(row["naive"], step, origins)]
        if forecasting._total_error(fold_totals) > forecasting._total_error(reference_totals):
            continue
        score = forecasting.choice_margin(errors, reference, margin)
        if score > best_margin:
            best, best_margin = method, score
    if agreement_t is not None and best in row["agreement"] and not row["agreement"][best] > agreement_t:
        return row["naive"]
    return best


def choose_main(n_jobs: int, cache: str | None = None) -> None:
    series = []
    if cache and Path(cache).exists():
        series = pickle.loads(Path(cache).read_bytes())
    for family, make in FAMILIES.items() if not series else ():
        for seed in CHOOSE_SEEDS:
            daily = make(seed)
            for window in CHOOSE_WINDOWS:
                rows = choose_series(daily, window, n_jobs)
                for row in rows:
                    row["data"], row["dataset"] = family, (family, seed, window)
                channel_agreement(rows)
                # The study's rule with today's constants is the rule forecast_channel_metrics applied.
                mismatch = [(r["channel"], r["metric"]) for r in rows
                            if choose(r, HELD_OUT_DAYS, forecasting.SELECTION_ORIGINS, forecasting.SELECTION_MARGIN,
                                      forecasting.CHANNEL_AGREEMENT_T) != r["published"]]
                assert not mismatch, f"the study's choice differs from ml.forecasting's on {mismatch}"
                series += rows
                print(f"{family} seed {seed} window {window}: {len(rows)} series", flush=True)
    if cache and not Path(cache).exists():
        Path(cache).write_bytes(pickle.dumps(series))

    def held_out_skills(row, method):
        error, total = row["held_out"][method]
        naive_error, naive_total = row["held_out"][row["naive"]]
        return skill_score(error, naive_error), skill_score(total, naive_total)

    def summary(rules: dict) -> pd.DataFrame:
        out = []
        for name, pick in rules.items():
            picks = [(row, pick(row)) for row in series if row["actual"] > 0]
            scores = pd.DataFrame([(row["data"], *held_out_skills(row, method), method in forecasting.NAIVE_METHODS)
                                   for row, method in picks],
                                  columns=["data", "days", "totals", "naive"])
            out.append({"rule": name, "series": len(scores), "on naive": int(scores["naive"].sum()),
                        "below 0, days": int((scores["days"] < 0).sum()),
                        "below 0, totals": int((scores["totals"] < 0).sum()),
                        "mean skill days (clip -1)": scores["days"].clip(lower=-1).mean(),
                        "mean skill totals (clip -1)": scores["totals"].clip(lower=-1).mean(),
                        "median days": scores["days"].median(), "median totals": scores["totals"].median(),
                        **{f"{d}: mean days / below 0": f"{g['days'].clip(lower=-1).mean():.3f} / "
                                                       f"{int((g['days'] < 0).sum())}"
                           for d, g in scores.groupby("data")}})
        return pd.DataFrame(out)

    def lowest_error(row):  # the rule before the margin: lowest backtest error among those beating naive
        naive_error, naive_totals = row["naive_backtest"]
        ok = {m: e for m, (e, t) in row["backtest"].items() if m not in forecasting.NAIVE_METHODS and e < naive_error
              and not skill_score(forecasting._total_error(t), forecasting._total_error(naive_totals)) < 0}
        return min(ok, key=ok.get) if ok else row["naive"]

    rules = {"before: lowest backtest error (3 folds)": lowest_error}
    for step, origins in CHOOSE_FOLDS:
        for margin in CHOOSE_MARGINS:
            rules[f"{origins} origins {step} d apart, k={margin:g}"] = (
                lambda row, s=step, o=origins, k=margin: choose(row, s, o, k))
    table = summary(rules)
    print(table.round(3).to_string())
    print()
    print(rule_study(series).round(3).to_string())


SIMPLE_MODELS = (forecasting.LEVEL_METHOD, forecasting.RECENT_LEVEL_METHOD, forecasting.REVERTING_METHOD,
                 forecasting.SPEND_REGRESSION_METHOD)


def _lower_bound(values: np.ndarray, k: float) -> float:
    values = values[np.isfinite(values)]
    return values.mean() - k * values.std(ddof=1) / np.sqrt(len(values)) if len(values) >= 2 else np.nan


def _total_gains(row: dict, method: str, folds: tuple[int, int]) -> np.ndarray | None:
    """Per fold: the naive total's error minus the model's, over the fold's actual total (Prophet: backtest folds)."""
    paths = row["prophet_paths"] if method == forecasting.METHOD else row["paths"][folds]
    if method == forecasting.METHOD:
        predictions, naive = paths["prophet"], paths["naive"]
    elif method in paths:
        predictions, naive = paths[method], paths[row["naive"]]
    else:
        return None
    return np.array([(abs(q.sum() - a.sum()) - abs(p.sum() - a.sum())) / abs(a.sum()) if a.sum() > 0 else np.nan
                     for p, q, a in zip(predictions, naive, paths["actual"], strict=True)])


def rule_study(series: list[dict]) -> pd.DataFrame:
    """The rules tried in the channel-agreement revision, scored on the same held-out windows: the published rule
    then (margin only) and now (with the channel agreement), a separate totals margin, stacking weights, shrinkage by
    the margin's t statistic, shorter-spaced origins, and a choice pooled over the channel's series."""
    series = [row for row in series if row["actual"] > 0]
    for rows in pd.Series(series).groupby([str(r["dataset"]) for r in series]):
        channel_agreement(list(rows[1]))

    def held(row, method):
        return row["held_out_paths"][method]

    def margin_rule(row, k=1.0, step=HELD_OUT_DAYS, origins=6, agreement_t=None):
        return held(row, choose(row, step, origins, k, agreement_t))

    def totals_level(row, k, folds):
        path = margin_rule(row)
        gains = {m: _lower_bound(g, k) for m in SIMPLE_MODELS if (g := _total_gains(row, m, folds)) is not None}
        best = max(gains, key=lambda m: np.nan_to_num(gains[m], nan=-np.inf), default=None)
        if best is None or not gains[best] > 0 or path.sum() <= 0:
            return path
        return path * held(row, best).sum() / path.sum()

    def totals_choice(row, k, folds):
        naive_error = row["naive_backtest"][0]
        gains = {m: _lower_bound(g, k) for m in (forecasting.METHOD, *SIMPLE_MODELS) if m in row["backtest"]
                 and row["backtest"][m][0] < naive_error and (g := _total_gains(row, m, folds)) is not None}
        best = max(gains, key=lambda m: np.nan_to_num(gains[m], nan=-np.inf), default=None)
        return held(row, best) if best is not None and gains[best] > 0 else held(row, row["naive"])

    def stack(row, folds, totals):
        from scipy.optimize import nnls

        paths = row["paths"][folds]
        methods = [row["naive"], *[m for m in SIMPLE_MODELS if m in paths]]
        design, target = [], []
        for i, actual in enumerate(paths["actual"]):
            scale = abs(actual.sum()) if actual.sum() > 0 else 1.0
            columns = np.column_stack([paths[m][i] for m in methods]) / scale
            design.append(columns.sum(axis=0, keepdims=True) if totals else columns)
            target.append(np.atleast_1d(actual.sum() if totals else actual) / scale)
        x, y = np.vstack(design), np.concatenate(target)
        weight = 1e3 * max(1.0, float(np.abs(x).max()))  # the sum-to-1 constraint as a heavy extra row
        w, _ = nnls(np.vstack([x, weight * np.ones(len(methods))]), np.append(y, weight))
        return sum(wi / w.sum() * held(row, m) for wi, m in zip(w, methods, strict=True))

    def shrink(row, c, k):
        method = choose(row, HELD_OUT_DAYS, 6, k)
        naive = held(row, row["naive"])
        if method in forecasting.NAIVE_METHODS:
            return naive
        x = fold_skills(row, method)
        x = x[np.isfinite(x)]
        t = x.mean() / (x.std(ddof=1) / np.sqrt(len(x))) if x.std(ddof=1) > 0 else np.inf
        return naive + float(np.clip(1.0 - c / t ** 2, 0.0, 1.0)) * (held(row, method) - naive)

    def channel_pooled(row, t_min):
        ok = [m for m, t in row["agreement"].items() if t > t_min and row["backtest"][m][0] < row["naive_backtest"][0]
              and not skill_score(forecasting._total_error(row["backtest"][m][1]),
                                  forecasting._total_error(row["naive_backtest"][1])) < 0]
        return held(row, max(ok, key=row["agreement"].get)) if ok else margin_rule(row)

    rules = {"margin only (revision eb0822e)": margin_rule,
             f"margin + channel agreement t > {forecasting.CHANNEL_AGREEMENT_T:g} (now)":
                 lambda r: margin_rule(r, agreement_t=forecasting.CHANNEL_AGREEMENT_T)}
    for t in (1.0, 1.5, 2.5):
        rules[f"margin + channel agreement t > {t:g}"] = lambda r, t=t: margin_rule(r, agreement_t=t)
    for step, origins in ((15, 12), (10, 18), (7, 24)):
        for k in (1.0, 1.5, 2.0):
            rules[f"margin on {origins} origins {step} d apart, k={k:g}"] = (
                lambda r, s=step, o=origins, k=k: margin_rule(r, k, s, o))
    for folds in ((30, 6), (15, 12), (7, 24)):
        for k in (0.5, 1.0, 2.0, 3.0):
            rules[f"totals rescaled to a totals margin {folds}, k={k:g}"] = lambda r, k=k, f=folds: totals_level(r, k, f)
            rules[f"chosen on a totals margin {folds}, k={k:g}"] = lambda r, k=k, f=folds: totals_choice(r, k, f)
    for folds in ((30, 6), (15, 12), (7, 24)):
        rules[f"stacking weights on days {folds}"] = lambda r, f=folds: stack(r, f, False)
        rules[f"stacking weights on totals {folds}"] = lambda r, f=folds: stack(r, f, True)
    for k in (0.0, 1.0):
        for c in (0.5, 1.0, 2.0, 4.0):
            rules[f"shrink toward naive, 1 - {c:g}/t^2, margin k={k:g}"] = lambda r, c=c, k=k: shrink(r, c, k)
    for t in (1.0, 2.0):
        rules[f"model best pooled over the channel, t > {t:g}"] = lambda r, t=t: channel_pooled(r, t)

    out = []
    for name, rule in rules.items():
        scores = []
        for row in series:
            path, actual, naive = rule(row), row["held_out_paths"]["actual"], held(row, row["naive"])
            scores.append((row["data"], skill_score(np.abs(path - actual).sum(), np.abs(naive - actual).sum()),
                           skill_score(abs(path.sum() - actual.sum()), abs(naive.sum() - actual.sum()))))
        scores = pd.DataFrame(scores, columns=["data", "days", "totals"])
        out.append({"rule": name, "series": len(scores), "below 0, days": int((scores["days"] < 0).sum()),
                    "below 0, totals": int((scores["totals"] < 0).sum()),
                    "mean skill days (clip -1)": scores["days"].clip(lower=-1).mean(),
                    "mean skill totals (clip -1)": scores["totals"].clip(lower=-1).mean(),
                    **{f"{d}: mean totals / below 0": f"{g['totals'].clip(lower=-1).mean():.3f} / "
                                                      f"{int((g['totals'] < 0).sum())}"
                       for d, g in scores.groupby("data")}})
    return pd.DataFrame(out)


def target(table: pd.DataFrame) -> str:
    days, totals = table["after skill"].median(), table["after total skill"].median()
    verdict = {True: "met", False: "not met"}
    return f"days {verdict[bool(days >= 0.2)]}, 30-day totals {verdict[bool(totals >= 0.2)]}"


def medians(table: pd.DataFrame, where=None) -> str:
    rows = table if where is None else table[where]
    return (f"median skill on days {rows['before skill'].median():.3f} before, {rows['after skill'].median():.3f} "
            f"after; on 30-day totals {rows['before total skill'].median():.3f} before, "
            f"{rows['after total skill'].median():.3f} after; lowest after {rows['after skill'].min():.3f} (days), "
            f"{rows['after total skill'].min():.3f} (totals); {int(rows['method'].str.startswith('naive').sum())} of "
            f"{len(rows)} series on the naive fallback")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/forecast_skill.md")
    parser.add_argument("--choose", action="store_true",
                        help="print the study that chose the model choice's origins and margin (seeds 101-102)")
    parser.add_argument("--cache", help="with --choose: keep the study's per-series forecasts in this pickle "
                                         "(read it instead of refitting when it exists)")
    parser.add_argument("--backtest-folds", type=int, help="with --choose: Prophet's backtest folds in the study")
    args = parser.parse_args()
    if args.backtest_folds:
        CHOOSE_OPTIONS["backtest_folds"] = args.backtest_folds
    if args.choose:
        choose_main(args.n_jobs, args.cache)
        return

    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "ml/forecasting.py"], capture_output=True, text=True).stdout
    command = "python benchmarks/bench_forecast_skill.py " + " ".join(sys.argv[1:])
    lines = [
        "# Forecast skill against naive baselines",
        "",
        "Written by `benchmarks/bench_forecast_skill.py`; do not edit by hand.",
        "",
        f"Command: `{command.strip()}`; code revision `{revision}`{' (ml/forecasting.py modified)' if dirty else ''}.",
        "",
        "Each (channel, metric) series is backtested on 3 rolling origins with a 30-day horizon, on the days",
        "with spend. Errors are WAPE (`sum |forecast - actual| / sum |actual|`) over every held-out day",
        "(`err`), or over the three 30-day totals (`total`). The naive error is the better of the mean of",
        "the last 28 live days (`28d_mean`) and the same-weekday mean of the last 4 weeks (`weekday`),",
        "on the same folds. Skill is `1 - error / naive error`: 0 is no better than naive.",
        "**before**: Prophet alone as it was before issue 13 (trend prior 0.05, country holidays, no fallback,",
        "no calibration). **after**: as published now. These models compete per series on the same folds:",
        "Prophet (with the retail peak days of `ml.events`), `level_weekday` (same-weekday mean of the last",
        f"{LEVEL_WINDOW_DAYS} days with spend: the level a re-planned budget returns to), `level_recent_mean`",
        "(the mean of that and the 28-day naive mean), `level_reverting` (`level_weekday` times the last",
        f"{REVERTING_RECENT_DAYS} live days' ratio to it, the ratio reverting to 1 by {REVERSION} a week ahead: a",
        "budget re-planned weekly with some persistence) and, for revenue and",
        "conversions, `spend_regression` (weekday intercepts + adstocked spend by least squares; future spend:",
        f"{FUTURE_SPEND}; recorded in `future_spend`). A model qualifies when it beats the naive error on days,",
        "is no worse on totals, and its per-fold skill against the better naive baseline stays above 0 by",
        f"{SELECTION_MARGIN:g} standard error of its mean over the folds (`choice_margin` = mean - k sd / sqrt(n) > 0;",
        f"the simple models on {SELECTION_ORIGINS} origins one horizon apart, Prophet on its 3 backtest folds); the",
        "qualifying model with the highest margin is published, else the better",
        "naive baseline (skill 0). `prophet/level/level+recent/reverting/spend reg err` are each model's own",
        "backtest error. The window, the 50/50 mean and the reversion (0.2-0.7 per week, 7/14/28 recent days) were",
        "chosen on seeds 101 and 102 of both families; the report seeds are others. Tried there and left out: the",
        "equal mean of all models, the mean of Prophet and `level_recent_mean` (median skill +0.000 to +0.004), and",
        "publishing each series' horizon total from the model best on totals (daily shape kept: totals +0.01 to",
        "+0.05, days -0.05 on demo seed 101 and below 0 on one series).",
        "Before these models (revision 29eedda: Prophet or the naive fallback) the demo's medians after the fallback",
        "were 0.000 on days and on totals for both seeds, with 26 (seed 42) and 27 (seed 43) of 48 series on naive.",
        "Before `level_reverting` (revision 1724b8b) they were 0.111 on days and 0.157 on totals (seed 42), 0.024",
        "and 0.188 (seed 43), with 17 of 48 series on naive for each seed.",
        "**Choice rule (this revision).** Until revision 4929cde the published model was the lowest backtest error",
        "among those beating naive on 3 folds. Held out (below) that choice overfitted the folds: "
        + "; ".join(f"{name} median {days:.3f} on days and {totals:.3f} on totals, {below} of {n} series below 0"
                    for name, (days, totals, below, _, n, _, _) in EARLIER_HELD_OUT.items()) + ".",
        "Now a model must also beat naive by more than its fold-to-fold spread (`choice_margin` above) on more",
        "folds. The constants were chosen on seeds 101 and 102 of both families, scoring what would have been",
        "published on three held-out 30-day windows per seed (`--choose`, 504 series): of 3-18 origins 7-45 days",
        "apart and k of 0-3, 6 origins one horizon apart with k = 1 cut the series below 0 on held-out days from",
        "139 to 93 and on totals from 125 to 78, mean held-out skill (each series clipped at -1) 0.046 -> 0.038 on",
        "days and 0.107 -> 0.105 on totals (k = 0.5: 117 below 0, 0.045 / 0.100; k = 1.5: 64, 0.027 / 0.055).",
        "Shrinking the chosen model toward naive (a 50/50 or 70/30 blend, or a weight from the folds) did no better",
        "there. The held-out figures before -> after on the report seeds are in the summary.",
        f"**Channel agreement (this revision).** A series' choice must also hold across its channel: over the channel's",
        f"series that have the model (at least {CHANNEL_AGREEMENT_MIN_SERIES}), the model's mean per-fold skill against",
        f"each series' better naive baseline must be above 0 by {CHANNEL_AGREEMENT_T:g} standard errors of its mean over",
        "the series (`channel_agreement`, a t statistic), else the series falls back to naive: the metrics of a channel",
        "follow one spend, so a model winning one metric's folds but not its siblings' most likely won by luck. On the",
        "choice seeds (`--choose`, 502 series with held-out actuals) t > 1.5 or 2 (the same series) cut the series below 0",
        "on held-out days 93 -> 85 and on totals 78 -> 72, mean held-out skill 0.038 -> 0.040 (days), 0.105 -> 0.109",
        "(totals); t > 2.5: 84 / 70 below 0, 0.035 / 0.095. It vetoes 12 of the 270 models the margin published.",
        "**Tried on the choice seeds and left out** (`--choose`, the last table; 502 series, against the rule then",
        "published: 93 / 78 below 0 on days / totals, mean skill 0.038 / 0.105): more, shorter-spaced origins for the",
        "margin (12 origins 15 days apart, 18 10 apart, 24 7 apart: at k = 1 87-92 below 0 on totals and mean totals",
        "0.092-0.100; at a k that keeps 78 or fewer below 0 on totals, mean totals 0.055-0.058); Prophet judged on 6",
        "backtest folds instead of 3 (`--choose --backtest-folds 6`, margin only: 94 / 80 below 0, 0.026 / 0.061, and",
        "3 more Prophet fits per series); a separate margin for totals, either keeping the day choice and rescaling its",
        "horizon total to the simple model whose per-fold gain in total error is above 0 by k = 0.5-3 standard errors",
        "(93-135 / 75-118 below 0, mean totals 0.066-0.119; the one point above 0.105, 12 origins 15 days apart at",
        "k = 3, has 94 below 0 on days and its neighbours do not beat the rule), or choosing the model on that totals",
        "margin (k = 0.5-1: 100-120 below 0 on totals, 0.083-0.110; k = 2-3: 14-79, 0.007-0.052); stacking weights",
        "fitted on the origins (least squares, non-negative, summing to 1, over naive and the simple models, on days or",
        "on totals: 157-183 / 159-180 below 0, mean totals 0.014-0.060); shrinking the chosen model toward naive by",
        "its margin's t statistic (weight 1 - c / t^2, c = 0.5-4: 41-95 / 40-85 below 0 and less totals skill,",
        "0.016-0.088); choosing per channel the model best pooled over the channel's series (107 / 95 below 0,",
        "0.050 / 0.110: a little more skill, more series below 0).",
        "Choosing the best of several models on the folds that also score it flatters the backtest skill a little;",
        f"the **held-out** section refits without the last {HELD_OUT_DAYS} days and scores what would have been",
        "published on them, days that took no part in choosing the model or calibrating the interval.",
        "",
        "Intervals: `coverage before` is the share of the backtest's held-out days inside the 95% interval",
        "of the published method laid around each fold's forecast (square-root scale offsets, day k of the",
        "horizon); where it is under 95% the draws are widened by the split-conformal factor (`interval",
        "factor`, >= 1) that covers 95% of them, which scales the ROI and CTR intervals too.",
        "",
        "What limits skill on days on the demo: its spend is re-planned every week (log sd 0.6, AR 0.3) with",
        "3-10 day pulses (pause, halve, double) and campaign flights (`ml.synthetic._budget_level`,",
        "`_flights`), and every other metric follows spend. From history alone a model can find the level",
        "the budget returns to and the weekday pacing, not next week's re-plan: skill shows on 30-day totals",
        "(the ROI table's sums) rather than on days. Revenue under a *planned* spend is what the spend scenarios",
        "answer (`ml_spend_scenarios`). The second family has 10-30% daily noise on every metric.",
        "",
        "**Attainable skill** (demo, spend and platform revenue; `benchmarks/bench_forecast_oracle.py`): the",
        "generator's spend is replayed with its own random stream (checked to the cent), and two oracles are",
        "scored on the same folds and days against the same naive baselines. `oracle_history` knows the",
        "generator's parameters, the flight calendar, campaign budgets, weekday pacing and the budget level up to",
        "the cutoff, and forecasts the future level by its conditional expectation: no forecast from history can",
        "do better on average (it even knows the flight calendar, which history does not). `oracle_plan` also",
        "knows the realized re-plans and pulses (not the daily noise): a planner's own plan, which is what the",
        "spend scenarios take as input. Revenue of both: the channel's true adstock and saturation applied to the",
        "oracle's spend path, times the platform's claim factor. (No oracle for the second family.)",
        "",
    ]
    summary, coverage_rows, attainable, held_changes, all_held = [], [], [], [], []
    for family, make in FAMILIES.items():
        for seed in args.seeds:
            daily = make(seed)
            table, timings = score(daily, args.n_jobs)
            load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "unknown"
            held = held_out(daily, args.n_jobs)
            title = f"{family}, seed {seed}"
            revenue = table.index.get_level_values("metric") == "revenue"
            print(f"== {title}: {medians(table)}")
            print(f"   revenue only: {medians(table, revenue)}")
            print(table.round(3).to_string())
            print(held.round(3).to_string())
            print(f"   seconds: before {timings['before']:.1f} (CPU {timings['before_cpu']:.1f}), "
                  f"after {timings['after']:.1f} (CPU {timings['after_cpu']:.1f})\n", flush=True)
            held_text = (f"held out: median skill on days {held['held-out skill'].median():.3f}, on the 30-day "
                         f"total {held['held-out total skill'].median():.3f}")
            earlier = [table_.get(f"{family}, seed {seed}") for table_ in (EARLIER_HELD_OUT, MARGIN_HELD_OUT)]
            all_held.append(held)
            if all(earlier):
                now = (held['held-out skill'].median(), held['held-out total skill'].median(),
                       int((held['held-out skill'] < 0).sum()), int((held['held-out total skill'] < 0).sum()),
                       len(held), held['held-out skill'].clip(lower=-1).mean(),
                       held['held-out total skill'].clip(lower=-1).mean())
                cells = [" -> ".join(f"{figures[i]:.3f}" if isinstance(figures[i], float) else str(figures[i])
                                     for figures in (*earlier, now)) for i in (0, 1, 2, 3, 5, 6)]
                cells[2] += f" of {len(held)}"
                held_changes.append(f"| {family}, seed {seed} | " + " | ".join(cells) + " |")
            oracle_lines, oracle_text = [], ""
            if family == "demo":
                oracle = oracle_scores(seed)
                oracle["after skill"] = table["after skill"].reindex(oracle.index)
                oracle["after total skill"] = table["after total skill"].reindex(oracle.index)
                ours = oracle[["after skill", "after total skill"]].median()
                best = oracle[["oracle_history skill", "oracle_history total skill", "oracle_plan skill",
                               "oracle_plan total skill"]].median()
                oracle_text = (f"oracle_history (best from history) median skill on spend and revenue "
                               f"{best['oracle_history skill']:.3f} on days, {best['oracle_history total skill']:.3f}"
                               f" on totals (published: {ours['after skill']:.3f}, {ours['after total skill']:.3f}); "
                               f"oracle_plan {best['oracle_plan skill']:.3f}, {best['oracle_plan total skill']:.3f}")
                print("   " + oracle_text)
                print(oracle.round(3).to_string())
                attainable.append((seed, best))
                oracle_lines = [f"Attainable ({oracle_text}):", "",
                                oracle.round(3).reset_index().to_markdown(index=False), ""]
            summary.append(f"| {title} | {medians(table)}; {held_text}{'; ' + oracle_text if oracle_text else ''} "
                           f"| {target(table)} |")
            for metric, rows in held.groupby(level="metric"):
                backtest_rows = table[table.index.get_level_values("metric") == metric]
                coverage_rows.append({
                    "data": title, "metric": metric,
                    "backtest before": backtest_rows["coverage before"].mean(),
                    "median factor": backtest_rows["interval factor"].median(),
                    "held out before": rows["coverage before"].mean(),
                    "held out after": rows["coverage after"].mean(),
                })
            lines += [
                f"## {title}",
                "",
                f"All series: {medians(table)}.",
                "",
                f"Revenue (the ROI table's `skill`): {medians(table, revenue)}.",
                "",
                table.round(3).reset_index().to_markdown(index=False),
                "",
                f"Held out (refit without the last {HELD_OUT_DAYS} days, scored on them): "
                f"{held_text.removeprefix('held out: ')}; "
                f"{int((held['held-out skill'] < 0).sum())} of {len(held)} series below 0 on days, "
                f"{int((held['held-out total skill'] < 0).sum())} on the total.",
                "",
                held.round(3).reset_index().to_markdown(index=False),
                "",
                *oracle_lines,
                f"Time with n_jobs={args.n_jobs} ({daily['channel'].nunique()} channels x 6 metrics, 730 days, "
                f"on a shared 2-core machine): before {timings['before']:.1f} s wall / {timings['before_cpu']:.1f} s "
                f"CPU, after {timings['after']:.1f} s wall / {timings['after_cpu']:.1f} s CPU (of which the model "
                f"choice: scores on the selection origins and the channel agreement, {timings['choice']:.2f} s); "
                "load average "
                f"{load} when it ended.",
                "",
            ]
    coverage = pd.DataFrame(coverage_rows)
    lines += ["## Interval coverage (95% nominal)", "",
              "Share of days with spend inside the interval, mean over the channels: on the backtest folds before the",
              "calibration, and on the held-out days before and after it (the factor is the median over channels).",
              "", coverage.round(3).to_markdown(index=False), ""]
    lines += ["## Summary", "", "Target (issue 13): median skill >= 0.2 after the fallback, never below 0.", "",
              "| data | result | target |", "|---|---|---|", *summary, ""]
    if held_changes:
        pooled = pd.concat(all_held)
        lines += ["Held out (refit without the last 30 days, scored on them): before the choice margin (revision",
                  "4929cde) -> with the choice margin (revision eb0822e) -> now (with the channel agreement):", "",
                  "| data | median skill, days | median skill, totals | series below 0, days | below 0, totals "
                  "| mean skill, days (clipped at -1) | mean skill, totals (clipped at -1) |",
                  "|---|---|---|---|---|---|---|", *held_changes, "",
                  f"Over all {len(pooled)} series now: {int((pooled['held-out skill'] < 0).sum())} below 0 on days, "
                  f"{int((pooled['held-out total skill'] < 0).sum())} on totals; mean held-out skill (clipped at -1) "
                  f"{pooled['held-out skill'].clip(lower=-1).mean():.3f} on days, "
                  f"{pooled['held-out total skill'].clip(lower=-1).mean():.3f} on totals.", ""]
    if attainable:
        below = [seed for seed, best in attainable if best["oracle_history skill"] < 0.2]
        lines += [
            "Attainable on the demo: `oracle_history`, which knows everything a forecast from history could and the "
            "flight calendar besides, reaches a median skill on days of "
            + ", ".join(f"{best['oracle_history skill']:.3f} (seed {seed})" for seed, best in attainable)
            + " on spend and revenue"
            + (": under 0.2 for every report seed, so the days target is out of reach from history on the demo; "
               if len(below) == len(attainable) else "; ")
            + "on 30-day totals "
            + ", ".join(f"{best['oracle_history total skill']:.3f} (seed {seed})" for seed, best in attainable)
            + ". Knowing the plan (`oracle_plan`) is what moves skill: "
            + ", ".join(f"{best['oracle_plan skill']:.3f}" for _, best in attainable)
            + " on days, which is why the spend scenarios take the planned spend as their input.", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
