"""What skill is attainable at all on the demo: two oracle forecasts of spend and platform revenue, scored against
the naive baselines on the backtest's folds and days (used by bench_forecast_skill.py; runnable alone).

Run: .venv/bin/python benchmarks/bench_forecast_oracle.py [--seeds 42 43]

The demo's spend (``ml.synthetic._simulate_campaign_spend``) is replayed with the generator's own random stream,
recording what it draws: each channel's weekly budget level and pulses, its weekday pacing, each campaign's
flights and budget, and the daily lognormal(0, 0.25) noise. The replay must give back the demo's spend to the
cent (checked), so the oracles use exactly the generator's path.

- ``oracle_plan`` knows the realized budget path (levels, pulses, flights, campaign budgets, pacing), not the
  daily noise: the best forecast for a planner who fixed next month's plan and keeps to it.
- ``oracle_history`` knows the calendar (flights, campaign budgets, weekday pacing) and the generator's parameters,
  and the budget level up to the cutoff; the future weekly level is its conditional expectation under the
  generator's AR(1) (log sd 0.6, AR 0.3) and a future day's pulse its expectation on days with spend. This is
  the best any forecast from history can do (it even knows the flight calendar, which history does not).

Platform revenue of either oracle: the channel's true response (adstock and saturation of ``ground_truth_channels``)
to the oracle's spend path (the realized spend up to the cutoff) times the platform's claim factor and the mean of
its lognormal report noise; Jensen's gap of the saturation under the spend noise is ignored.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from ml import synthetic
from ml.synthetic import generate_demo_data

HORIZON_DAYS = 30
FOLDS = 3
NAIVE_WINDOW_DAYS = 28
NAIVE_WEEKS = 4
# The spend noise of a campaign-day, lognormal(0, 0.25): its mean.
_NOISE_MEAN = float(np.exp(0.25 ** 2 / 2))
_AR, _LOG_SD = synthetic._BUDGET_AR, synthetic._BUDGET_LOG_SD
_PULSE_SHARE = 1.0 - np.exp(-6.5 / 15)  # days inside a 3-10 day pulse that starts every 15 days on average


@dataclass
class _ChannelPlan:
    scale: float            # spend_share * total_budget / raw.sum()
    weekly: np.ndarray      # pacing per day
    level: np.ndarray       # budget level per day (weekly re-plan times pulses)
    week_level: np.ndarray  # the weekly re-planned level alone, per day
    week: np.ndarray        # the re-planning week of each day
    log_level: np.ndarray   # per week
    calendar: np.ndarray    # sum over campaigns of flight-live * budget (no running mask)
    live_budget: np.ndarray  # sum over campaigns of live * budget (live includes the running mask)
    pause: float


def replay(seed: int, dates: pd.DatetimeIndex) -> tuple[np.ndarray, dict[str, _ChannelPlan]]:
    """Channel spend per day (as the generator rounds it) and each channel's plan."""
    rng = np.random.default_rng(seed)
    days = len(dates)
    dow = dates.day_of_week.to_numpy()
    specs = synthetic._SPECS
    total_budget = (synthetic._MEDIA_SHARE * synthetic._DAILY_REVENUE * 1.0 * days
                    / sum(s.spend_share * s.roas for s in specs))
    plans, columns, live_columns = {}, [], []
    for spec in specs:
        pause = 0.1 if spec.name == "search" else 0.0
        log_level, week, week_level, level = synthetic._budget_plan(rng, days, pause)

        weekly = np.asarray(spec.weekly)[dow]
        running = level > 0
        channel_columns, calendar, live_budget = [], np.zeros(days), np.zeros(days)
        for k in range(len(spec.campaigns)):
            if spec.name == "search" and k == 0:
                flight = np.ones(days, dtype=bool)
                live = flight
            elif k < spec.always_on:
                flight = synthetic._flights(rng, days, (90, 300), (2, 7))
                live = flight & running
            else:
                flight = synthetic._flights(rng, days, spec.flight_on, spec.flight_off)
                live = flight & running
            budget = rng.lognormal(0.0, 0.4) * (1.6 if k == 0 else 1.0)
            noise = rng.lognormal(0.0, 0.25, days)
            channel_columns.append(live * budget * noise)
            live_columns.append(live)
            calendar += flight * budget
            live_budget += live * budget
        if not any(col.any() for col in channel_columns):
            raise RuntimeError(f"{spec.name}: the replay met the generator's no-flight case, which it does not model")
        raw = np.column_stack(channel_columns) * (level * weekly)[:, None]
        scale = spec.spend_share * total_budget / raw.sum()
        columns.append(raw * scale)
        plans[spec.name] = _ChannelPlan(scale, weekly, level, week_level, week, log_level, calendar, live_budget,
                                        pause)
    live = np.column_stack(live_columns)
    spend = np.round(np.column_stack(columns), 2)
    spend = np.where(live, np.maximum(spend, 0.01), 0.0)
    campaign_channel = np.repeat(np.arange(len(specs)), [len(s.campaigns) for s in specs])
    channel_spend = np.zeros((days, len(specs)))
    np.add.at(channel_spend.T, campaign_channel, spend.T)
    return np.round(channel_spend, 2), plans


def _expected_pulse(pause: float, active_only: bool) -> float:
    factors = {pause: 0.35, 0.5: 0.3, 2.0: 0.35}
    inside = sum(f * p for f, p in factors.items())
    if not active_only or pause > 0:
        return 1.0 - _PULSE_SHARE + _PULSE_SHARE * inside
    # A paused day has no spend and is not scored: the expectation over the days with spend.
    return (1.0 - _PULSE_SHARE + _PULSE_SHARE * inside) / (1.0 - _PULSE_SHARE * 0.35)


def oracle_spend(plan: _ChannelPlan, cutoff: int, kind: str) -> np.ndarray:
    """The oracle's expected spend on every day (days after ``cutoff``, an index, are the forecast)."""
    mean_noise = plan.scale * plan.weekly * _NOISE_MEAN
    if kind == "plan":
        return mean_noise * plan.level * plan.live_budget
    last_week = plan.week[cutoff]
    ahead = plan.week - last_week
    ahead_c = np.maximum(ahead, 0)
    var = _LOG_SD ** 2 * (1 - _AR ** (2 * ahead_c)) / (1 - _AR ** 2)
    expected_level = np.exp(_AR ** ahead_c * plan.log_level[last_week] + var / 2)
    level = np.where(ahead > 0, expected_level, plan.week_level)
    return mean_noise * level * _expected_pulse(plan.pause, active_only=True) * plan.calendar


def _naive(values, weekdays, target_weekdays, method):
    level = values[-NAIVE_WINDOW_DAYS:].mean()
    out = np.full(len(target_weekdays), level)
    if method == "weekday":
        for d in np.unique(target_weekdays):
            same = values[weekdays == d][-NAIVE_WEEKS:]
            if len(same):
                out[target_weekdays == d] = same.mean()
    return out


def score_demo(seed: int, days: int = 730) -> pd.DataFrame:
    """Per channel and metric (spend, revenue): the oracles' and the naive baselines' WAPE on the backtest's folds
    and days, on days and on the three 30-day totals, and the oracles' skill against the better naive baseline."""
    data = generate_demo_data(scale=1.0, seed=seed, days=days)
    truth = data.ground_truth_daily
    dates = pd.DatetimeIndex(sorted(truth["date"].unique()))
    channel_spend, plans = replay(seed, dates)
    wide = truth.pivot(index="date", columns="channel", values="spend").loc[dates]
    names = [s.name for s in synthetic._SPECS]
    mismatch = np.abs(wide[names].to_numpy() - channel_spend).max()
    if mismatch > 0.011:
        raise RuntimeError(f"the replay of the demo's spend differs from the generator's by up to {mismatch:.2f}: "
                           "ml.synthetic changed its spend simulation; update bench_forecast_oracle.replay")
    params = data.ground_truth_channels.set_index("channel")
    daily = data.ad_performance_daily.groupby(["date", "channel"], as_index=False)[["spend", "revenue"]].sum()
    claim = {s.name: s.claim_factor for s in synthetic._SPECS}
    report_mean = float(np.exp(0.15 ** 2 / 2 + 0.1 ** 2 / 2))
    rows = []
    for c, name in enumerate(names):
        plan = plans[name]
        rows_c = daily[daily["channel"] == name].set_index("date").reindex(dates)
        active = rows_c["spend"].fillna(0).to_numpy() > 0
        observed = {m: rows_c[m].fillna(0).to_numpy(float) for m in ("spend", "revenue")}
        last = np.flatnonzero(active)[-1]
        cutoffs = [last - fold * HORIZON_DAYS for fold in range(1, FOLDS + 1)]
        p = params.loc[name]

        def revenue_of(spend_path):
            carried = lfilter([1 - p["adstock_decay"]], [1, -p["adstock_decay"]], spend_path)
            u = np.power(carried / p["saturation_half"], p["saturation_shape"])
            return claim[name] * report_mean * p["max_daily_effect"] * u / (1 + u)

        for metric in ("spend", "revenue"):
            errors = {k: [0.0, []] for k in ("plan", "history", "28d_mean", "weekday")}
            actual_sum = 0.0
            for cutoff in cutoffs:
                train = active & (np.arange(len(dates)) <= cutoff)
                hold = active & (np.arange(len(dates)) > cutoff) & (np.arange(len(dates)) <= cutoff + HORIZON_DAYS)
                actual = observed[metric][hold]
                actual_sum += np.abs(actual).sum()
                weekdays = dates.day_of_week.to_numpy()
                forecasts = {}
                for kind in ("plan", "history"):
                    path = oracle_spend(plan, cutoff, kind)
                    spend_path = np.where(np.arange(len(dates)) <= cutoff, channel_spend[:, c], path)
                    forecasts[kind] = (spend_path if metric == "spend" else revenue_of(spend_path))[hold]
                for method in ("28d_mean", "weekday"):
                    forecasts[method] = _naive(observed[metric][train], weekdays[train], weekdays[hold], method)
                for k, f in forecasts.items():
                    errors[k][0] += np.abs(f - actual).sum()
                    errors[k][1].append((f.sum(), actual.sum()))
            wape = {k: e / actual_sum for k, (e, _) in errors.items()}
            total = {k: sum(abs(f - a) for f, a in t) / sum(abs(a) for _, a in t) for k, (_, t) in errors.items()}
            naive = min(("28d_mean", "weekday"), key=lambda k: wape[k])
            rows.append({
                "channel": name, "metric": metric, "naive": naive, "naive err": wape[naive],
                "oracle_history err": wape["history"], "oracle_plan err": wape["plan"],
                "oracle_history skill": 1 - wape["history"] / wape[naive],
                "oracle_plan skill": 1 - wape["plan"] / wape[naive],
                "naive total err": total[naive],
                "oracle_history total skill": 1 - total["history"] / total[naive],
                "oracle_plan total skill": 1 - total["plan"] / total[naive],
            })
    return pd.DataFrame(rows).set_index(["channel", "metric"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    args = parser.parse_args()
    for seed in args.seeds:
        table = score_demo(seed)
        print(f"demo seed {seed}\n{table.round(3).to_markdown()}\n")
        print(table[[c for c in table.columns if "skill" in c]].median().round(3).to_string(), "\n")


if __name__ == "__main__":
    main()
