"""PyMC-Marketing's MMM beside Spendwise's media-mix model on the same generated cases (issue 12, item 5).

Not part of the product and not imported by the test suite: PyMC-Marketing is not a project dependency,
so it runs in a virtual environment of its own, outside the project's:

    python3 -m venv /tmp/pymc && /tmp/pymc/bin/pip install pymc-marketing
    /tmp/pymc/bin/python benchmarks/bench_mmm_pymc.py [--seeds 5] [--families demo media]
        [--ends 2026-12-20] [--draws 500 --tune 500 --chains 2] [--sampler pymc|nutpie|numpyro]
        [--history-days 365] [--no-doc]

The script has two halves. ``export`` runs under the project's venv (the script starts it itself with
``.venv/bin/python``): it generates every (family, report seed, window end) case exactly as
``benchmarks/bench_mmm_accuracy.py`` does, fits Spendwise's model with its defaults (180-day window,
100 bootstrap draws), and writes the input history, the generator's true ROAS over the window and
our estimates to a scratch directory. The PyMC half then fits PyMC-Marketing's ``MMM`` on the same
history (the last ``--history-days`` days ending with the window end: geometric adstock over 21 days,
logistic saturation, its default priors, yearly seasonality of order 2, a linear trend and
day-of-week controls) and takes each channel's ROAS over the same 180 days from the posterior of
its contributions in revenue units (median, and the 2.5-97.5% quantiles as the 95% interval).
Figures for both models on the same cases go into docs/mmm_accuracy.md under their own heading
(replacing that section only), with the command, the date and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
WINDOW_DAYS = 180
MAJOR_SHARE = 0.10
SECTION = "## PyMC-Marketing side by side"


# --------------------------------------------------------------------------- export (project venv)


def export(out: Path, families: list[str], seeds: list[int], ends: list[date]) -> None:
    """Write each case's history, truth and Spendwise's estimates under ``out`` (project venv only)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_mmm_accuracy import _data  # the accuracy benchmark's cases, generated the same way

    from ml.mmm import fit_media_mix_model

    out.mkdir(parents=True, exist_ok=True)
    for family in families:
        for seed in seeds:
            for end in ends:
                daily, true_roas = _data(family, seed, end)
                started = time.perf_counter()
                result = fit_media_mix_model(daily, lookback_days=WINDOW_DAYS, n_bootstrap=100)
                seconds = time.perf_counter() - started
                diag = result.diagnostics
                truth = true_roas(diag["start_date"], diag["end_date"]).set_index("channel")
                ours = result.channels.set_index("channel")
                rows = pd.DataFrame({
                    "channel": ours.index, "spend": ours["spend"].to_numpy(),
                    "true_roas": truth.loc[ours.index, "roas"].to_numpy(),
                    "roas": ours["roas"].to_numpy(), "roas_lower": ours["roas_lower"].to_numpy(),
                    "roas_upper": ours["roas_upper"].to_numpy(), "seconds": seconds,
                })
                stem = out / f"{family}_{seed}_{end.isoformat()}"
                daily.to_csv(f"{stem}_daily.csv", index=False)
                rows.to_csv(f"{stem}_spendwise.csv", index=False)
                (Path(f"{stem}_window.json")).write_text(json.dumps(
                    {"start": str(diag["start_date"]), "end": str(diag["end_date"])}), encoding="utf-8")
                print(f"exported {stem.name}: spendwise {seconds:.1f} s", flush=True)


# --------------------------------------------------------------------------- PyMC-Marketing (own venv)


def fit_pymc(daily: pd.DataFrame, start: str, end: str, history_days: int, draws: int, tune: int,
             chains: int, seed: int, sampler: str = "pymc") -> tuple[pd.DataFrame, float]:
    """PyMC-Marketing's ROAS per channel over ``start``..``end`` and the seconds the fit took."""
    from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation

    daily = daily.copy()
    daily["date"] = pd.to_datetime(daily["date"])
    channels = [c for c in daily.columns if c not in ("date", "revenue")]
    history = daily.iloc[-history_days:].reset_index(drop=True)
    history["trend"] = np.arange(len(history)) / len(history)
    dow = history["date"].dt.dayofweek
    controls = ["trend"]
    for d in range(1, 7):
        history[f"dow_{d}"] = (dow == d).astype(float)
        controls.append(f"dow_{d}")
    # A channel without spend in the history has nothing to learn from; PyMC-Marketing's scaling divides by
    # its maximum, so it is left out (its ROAS stays undefined, as in the truth).
    live = [c for c in channels if history[c].max() > 0]
    model = MMM(
        date_column="date", channel_columns=live, control_columns=controls,
        adstock=GeometricAdstock(l_max=21), saturation=LogisticSaturation(), yearly_seasonality=2,
    )
    started = time.perf_counter()
    model.fit(history[["date", *live, *controls]], history["revenue"], draws=draws, tune=tune, chains=chains,
              cores=1, random_seed=seed, progressbar=False, nuts_sampler=sampler)
    seconds = time.perf_counter() - started
    import arviz

    rhat = float(arviz.rhat(model.idata.posterior).to_array().max()) if chains > 1 else float("nan")
    contribution = model.compute_channel_contribution_original_scale()  # (chain, draw, date, channel)
    dates = pd.to_datetime(contribution.coords["date"].values)
    in_window = (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    total = contribution.isel(date=np.flatnonzero(in_window)).sum("date").stack(sample=("chain", "draw"))
    window = (history["date"] >= pd.Timestamp(start)) & (history["date"] <= pd.Timestamp(end))
    rows = []
    for channel in channels:
        spend = float(history.loc[window, channel].sum())
        if channel not in live or spend <= 0:
            rows.append({"channel": channel, "roas": np.nan, "roas_lower": np.nan, "roas_upper": np.nan})
            continue
        samples = total.sel(channel=channel).values / spend
        rows.append({"channel": channel, "roas": float(np.median(samples)),
                     "roas_lower": float(np.quantile(samples, 0.025)),
                     "roas_upper": float(np.quantile(samples, 0.975))})
    return pd.DataFrame(rows).assign(max_rhat=rhat), seconds


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (family, model): the accuracy benchmark's main figures over major channels."""
    rows = rows.copy()
    rows["error"] = rows["roas"] / rows["true_roas"] - 1
    rows["inside"] = rows["true_roas"].between(rows["roas_lower"], rows["roas_upper"])
    rows["share"] = rows["spend"] / rows.groupby(["family", "model", "seed", "end"])["spend"].transform("sum")
    major = rows[rows["share"] >= MAJOR_SHARE]
    table = major.groupby(["family", "model"]).agg(
        major_channels=("error", "size"),
        within_25pct=("error", lambda e: (e.abs() <= 0.25).mean()),
        median_abs_error=("error", lambda e: e.abs().median()),
        inside_95pct=("inside", "mean"),
        off50_outside=("inside", lambda v: ((major.loc[v.index, "error"].abs() > 0.5) & ~v).mean()),
    )
    if "max_rhat" in rows:
        table["max_rhat"] = rows.groupby(["family", "model"])["max_rhat"].max()
    table["seconds_per_fit"] = rows.groupby(["family", "model", "seed", "end"])["seconds"].first().groupby(
        ["family", "model"]).mean()
    return table.round(3)


def by_channel(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows["family"] == "media"].copy()
    rows["error"] = rows["roas"] / rows["true_roas"] - 1
    rows["share"] = rows["spend"] / rows.groupby(["model", "seed", "end"])["spend"].transform("sum")
    major = rows[rows["share"] >= MAJOR_SHARE]
    return major.groupby(["channel", "model"]).agg(
        major_rows=("error", "size"), within_25pct=("error", lambda e: (e.abs() <= 0.25).mean()),
        median_error=("error", "median"),
    ).round(3)


def write_section(doc: Path, text: str, heading: str = SECTION) -> None:
    """Put ``text`` (starting with ``heading``) in ``doc`` in place of its previous section of that heading,
    else before "Columns"."""
    current = doc.read_text(encoding="utf-8") if doc.exists() else ""
    if heading in current:
        before, _, rest = current.partition(heading)
        after = rest[rest.find("\n## "):] if "\n## " in rest else ""
        current = before.rstrip() + "\n\n" + text.rstrip() + "\n" + after
    elif "\n## Columns" in current:
        before, _, after = current.partition("\n## Columns")
        current = before.rstrip() + "\n\n" + text.rstrip() + "\n\n## Columns" + after
    else:
        current = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    doc.write_text(current, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["run", "export"], default="run",
                        help="export is the project-venv half the run starts itself")
    parser.add_argument("--seeds", type=int, default=5, help="report seeds 1000, 1001, ... (this many)")
    parser.add_argument("--families", nargs="+", default=["demo", "media"], choices=["demo", "media"])
    parser.add_argument("--ends", type=date.fromisoformat, nargs="+", default=[date(2026, 12, 20)])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--sampler", default="pymc", choices=["pymc", "nutpie", "numpyro"],
                        help="NUTS implementation (nutpie and numpyro need their package in the venv)")
    parser.add_argument("--history-days", type=int, default=365,
                        help="days of history PyMC-Marketing is fitted on, ending with the window end")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_mmm_pymc"), help="scratch directory")
    parser.add_argument("--csv", type=Path, help="also write every channel's row here")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "mmm_accuracy.md")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--reuse-export", action="store_true",
                        help="keep the exported cases (and Spendwise's fits) already in --work")
    parser.add_argument("--from-csv", type=Path,
                        help="write the section from the rows (and run notes) an earlier run saved with --csv")
    args = parser.parse_args()
    seeds = list(range(1000, 1000 + args.seeds))
    if args.mode == "export":
        export(args.work, args.families, seeds, args.ends)
        return
    if args.from_csv:
        report = pd.read_csv(args.from_csv)
        run = json.loads(Path(f"{args.from_csv}.run.json").read_text(encoding="utf-8"))
        write_section(args.doc, _section(report, run))
        print(f"wrote {args.doc}")
        return

    try:
        import pymc_marketing  # noqa: F401
    except ImportError:
        sys.exit("PyMC-Marketing is not installed in this interpreter; run the script with its own venv "
                 "(see the top of benchmarks/bench_mmm_pymc.py)")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    cases = [(f, seed, end) for seed in seeds for end in args.ends for f in args.families]  # families interleaved
    exported = all((args.work / f"{f}_{seed}_{end.isoformat()}_spendwise.csv").exists() for f, seed, end in cases)
    if not (args.reuse_export and exported):
        subprocess.run([str(PROJECT_PYTHON), __file__, "export", "--work", str(args.work), "--seeds", str(args.seeds),
                        "--families", *args.families, "--ends", *map(str, args.ends)], check=True)
    import pymc
    import pymc_marketing

    rows = []
    for family, seed, end in cases:
        stem = args.work / f"{family}_{seed}_{end.isoformat()}"
        daily = pd.read_csv(f"{stem}_daily.csv")
        window = json.loads(Path(f"{stem}_window.json").read_text(encoding="utf-8"))
        ours = pd.read_csv(f"{stem}_spendwise.csv")
        theirs, seconds = fit_pymc(daily, window["start"], window["end"], args.history_days, args.draws,
                                   args.tune, args.chains, seed, args.sampler)
        theirs = ours[["channel", "spend", "true_roas"]].merge(theirs, on="channel")
        theirs["seconds"] = seconds
        for name, frame in (("spendwise", ours), ("pymc_marketing", theirs)):
            rows.append(frame.assign(family=family, seed=seed, end=end, model=name))
        print(f"{stem.name}: pymc-marketing {seconds:.0f} s", flush=True)
        if args.csv:  # after every case, so that an interrupted run keeps what it measured
            _save(args.csv, pd.concat(rows, ignore_index=True), _run_notes(
                args, seeds, started, load_before, pymc_marketing.__version__, pymc.__version__,
                f"{len(rows) // 2} of {len(cases)} cases"))
    report = pd.concat(rows, ignore_index=True)
    run = _run_notes(args, seeds, started, load_before, pymc_marketing.__version__, pymc.__version__,
                     f"all {len(cases)} cases")
    if args.csv:
        _save(args.csv, report, run)
    print(score(report).to_string())
    print(by_channel(report).to_string())
    if not args.no_doc:
        write_section(args.doc, _section(report, run))
        print(f"wrote {args.doc}")


def _run_notes(args: argparse.Namespace, seeds: list[int], started: float, load_before: float, pymc_marketing: str,
               pymc: str, done: str) -> dict:
    return {
        "command": shlex.join(["<pymc venv>/bin/python", "benchmarks/bench_mmm_pymc.py", *sys.argv[1:]]),
        "date": date.today().isoformat(), "minutes": (time.perf_counter() - started) / 60,
        "cpus": os.cpu_count(), "python": platform.python_version(), "load_start": load_before,
        "load_end": os.getloadavg()[0], "pymc_marketing": pymc_marketing, "pymc": pymc, "done": done,
        "seeds": seeds, "ends": [str(e) for e in args.ends], "history_days": args.history_days,
        "sampler": args.sampler, "chains": args.chains, "draws": args.draws, "tune": args.tune,
    }


def _save(path: Path, report: pd.DataFrame, run: dict) -> None:
    report.to_csv(path, index=False)
    Path(f"{path}.run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")


def _decision(summary: pd.DataFrame) -> str:
    """The rule of issue 12 applied to the figures: adopt only if better; slower than 10 s means nightly only."""
    lines = []
    for family in summary.index.get_level_values("family").unique():
        ours, theirs = summary.loc[(family, "spendwise")], summary.loc[(family, "pymc_marketing")]
        better = theirs["within_25pct"] > ours["within_25pct"] and theirs["inside_95pct"] >= 0.85
        verdict = ("better on these cases, but at {:.0f} s per fit only fit for an optional nightly asset".format(
            theirs["seconds_per_fit"]) if better and theirs["seconds_per_fit"] > 10 else
            "better on these cases" if better else "not better on these cases")
        lines.append(
            f"- `{family}`: PyMC-Marketing {theirs['within_25pct']:.0%} of major channels within 25% (median error "
            f"{theirs['median_abs_error']:.0%}, coverage {theirs['inside_95pct']:.0%}, "
            f"{theirs['seconds_per_fit']:.0f} s per fit) against Spendwise's {ours['within_25pct']:.0%} "
            f"({ours['median_abs_error']:.0%}, "
            f"{ours['inside_95pct']:.0%}, {ours['seconds_per_fit']:.1f} s): {verdict}."
        )
    return "\n".join(lines)


def _section(report: pd.DataFrame, run: dict) -> str:
    summary, channels = score(report), by_channel(report)
    seeds = run["seeds"]
    return f"""{SECTION}

Written by `benchmarks/bench_mmm_pymc.py` (its own venv; see its docstring). Same generated cases as
above, a subset because PyMC-Marketing samples: report seeds {seeds[0]}..{seeds[-1]}, window end(s)
{', '.join(run['ends'])}. Spendwise: `fit_media_mix_model` defaults (180-day window, 100 bootstrap
draws). PyMC-Marketing {run['pymc_marketing']} (PyMC {run['pymc']}): `MMM` with geometric adstock
(21 days), logistic saturation, its default priors, yearly seasonality order 2, trend and day-of-week
controls, fitted on the last {run['history_days']} days; NUTS ({run['sampler']}) {run['chains']} chain(s) x
{run['draws']} draws after {run['tune']} tuning steps, one core; ROAS over the same 180 days from the
posterior of the contributions (median; 95% interval from the 2.5-97.5% quantiles); `max_rhat` is the
largest R-hat of any parameter over the family's fits (above 1.01: chains not mixed).

- Cases fitted: {run.get('done', 'all')}.
- Run on {run['date']}, {run['minutes']:.1f} minutes on {run['cpus']} CPU(s), Python {run['python']}; one-minute
  load average {run['load_start']:.1f} at the start, {run['load_end']:.1f} at the end.
- Command: `{run['command']}`

{summary.to_markdown()}

Decision (the rule of issue 12: the default fit runs every 30 minutes and must stay under 10 s, so a
slower engine can only be an optional nightly asset, and only if it is better):

{_decision(summary)}

Family `media` by channel (major rows):

{channels.to_markdown()}
"""


if __name__ == "__main__":
    main()
