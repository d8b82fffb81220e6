"""The published attribution tables, built from warehouse aggregates: no touch-level rows here.

Rule-based credit arrives per model, journey bucket, campaign and channel (dbt); data-driven credit
is computed from the conversion path table. Every share carries a bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.checks import CheckOutcome
from core.registry import ATTRIBUTION_MODELS as ALL_MODELS
from core.registry import DATA_DRIVEN_MODELS, RULE_BASED_MODELS  # noqa: F401 (re-exported for callers)
from ml.attribution.bootstrap import percentile_interval
from ml.attribution.markov_model import markov
from ml.attribution.shapley_model import shapley
# No model here can give negative credit: rule-based weights are non-negative fractions, Markov
# removal effects are non-negative (removing a channel can only remove paths to conversion), and
# Shapley with v(S) = conversions of journeys whose channels all lie in S is a sum of unanimity
# games, so each journey's credit is split equally among its channels.
MODELS_ALLOWING_NEGATIVE_CREDIT: tuple[str, ...] = ()

MEASURES = ["attributed_conversions", "attributed_revenue", "share", "share_lower", "share_upper"]


@dataclass(frozen=True)
class AttributionTables:
    channel: pd.DataFrame  # one row per model x channel
    campaign: pd.DataFrame  # one row per model x campaign (channel, campaign_id), with its name
    campaign_channel: pd.DataFrame  # one row per model x campaign x channel
    comparison: pd.DataFrame  # channels as rows, one share column per model

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "channel_attribution": self.channel,
            "campaign_attribution": self.campaign,
            "campaign_channel_attribution": self.campaign_channel,
            "attribution_model_comparison": self.comparison,
        }


def bucket_shares(
    buckets: pd.DataFrame, keys: list[str], *, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Credit and share per model and `keys`, with a grouped bootstrap over journey buckets.

    `buckets` has `model, bucket, <keys>, conversions, revenue`. Each journey lies in one bucket
    and buckets are a random partition of journeys, so resampling buckets with replacement
    resamples journeys in blocks; with ~200 buckets the interval is close to a journey bootstrap.
    """
    missing = {"model", "bucket", "conversions", "revenue", *keys} - set(buckets.columns)
    if missing:
        raise ValueError(f"bucket credit table lacks columns {sorted(missing)}")
    rng = np.random.default_rng(seed)
    out = []
    for model, part in buckets.groupby("model", sort=True):
        conv = part.pivot_table(index="bucket", columns=keys, values="conversions", aggfunc="sum", fill_value=0.0)
        rev = part.pivot_table(index="bucket", columns=keys, values="revenue", aggfunc="sum", fill_value=0.0)
        rev = rev.reindex(columns=conv.columns, fill_value=0.0)
        totals = conv.to_numpy().sum(axis=0)
        share = totals / totals.sum()
        frame = conv.columns.to_frame(index=False)
        frame.insert(0, "model", model)
        frame["attributed_conversions"] = totals
        frame["attributed_revenue"] = rev.to_numpy().sum(axis=0)
        frame["share"] = share
        if n_bootstrap > 0:
            n_buckets = conv.shape[0]
            weights = rng.multinomial(n_buckets, np.full(n_buckets, 1.0 / n_buckets), size=n_bootstrap)
            draws = weights @ conv.to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                draws = draws / draws.sum(axis=1, keepdims=True)
            interval = percentile_interval(share, draws, ci)
            frame["share_lower"], frame["share_upper"] = interval.low, interval.high
        else:
            frame["share_lower"], frame["share_upper"] = share, share
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def _data_driven_channel_credit(
    paths: pd.DataFrame, *, markov_order: int, n_bootstrap: int, ci: float, seed: int
) -> pd.DataFrame:
    standard = paths.rename(
        columns={"conversions": "total_conversions", "conversion_value": "total_conversion_value", "nulls": "total_null"}
    )[["path", "total_conversions", "total_conversion_value", "total_null"]]
    frames = []
    for name, result in (
        ("markov", markov(standard, order=markov_order, n_bootstrap=n_bootstrap, ci=ci, seed=seed)),
        ("shapley", shapley(standard, n_bootstrap=n_bootstrap, ci=ci, seed=seed)),
    ):
        frame = result.rename(columns={"attributed_value": "attributed_revenue"})
        if "share_lower" not in frame:
            frame["share_lower"], frame["share_upper"] = frame["share"], frame["share"]
        frame.insert(0, "model", name)
        frames.append(frame[["model", "channel", *MEASURES]])
    return pd.concat(frames, ignore_index=True)


def _split_to_campaigns(channel_credit: pd.DataFrame, linear_mix: pd.DataFrame) -> pd.DataFrame:
    """Share each channel's data-driven credit among its campaigns like the linear model does.

    The path table has no campaigns, so a channel's Markov/Shapley credit goes to its campaigns in
    proportion to their linear credit within the channel; interval bounds scale the same way,
    so they carry the channel-level uncertainty only.
    """
    mix = linear_mix.copy()
    mix["fraction"] = mix["attributed_conversions"] / mix.groupby("channel")["attributed_conversions"].transform("sum")
    merged = channel_credit.merge(mix[["campaign_id", "channel", "fraction"]], on="channel", how="inner")
    for col in MEASURES:
        merged[col] = merged[col] * merged["fraction"]
    return merged.drop(columns="fraction")


def _campaign_credit(
    buckets: pd.DataFrame, channel_credit: pd.DataFrame, campaign_spend: pd.DataFrame, kwargs: dict
) -> pd.DataFrame:
    """Rule-based credit per model and campaign (channel, campaign_id) that adds up to the channel credit.

    `campaign_id` is optional on touchpoints. A channel's credit from touches with a campaign goes to
    those campaigns (with their own bootstrap intervals); its credit from touches without one is
    spread over the same campaigns in proportion, so every channel's campaigns add up to the
    channel. A channel none of whose credited touches carries a campaign has its credit split by
    campaign spend (bounds scaled alike); a channel without campaigns at all has no campaign rows.
    """
    tagged = buckets[buckets["campaign_id"].notna()]
    columns = ["model", "campaign_id", "channel", *MEASURES]
    parts = []
    if not tagged.empty:
        cc = bucket_shares(tagged, ["campaign_id", "channel"], **kwargs)
        credit = channel_credit.set_index(["model", "channel"])["attributed_conversions"]
        revenue = channel_credit.set_index(["model", "channel"])["attributed_revenue"]
        total = channel_credit.groupby("model")["attributed_conversions"].sum()
        key = pd.MultiIndex.from_frame(cc[["model", "channel"]])
        tagged_sum = cc.groupby(["model", "channel"])["attributed_conversions"].transform("sum").to_numpy()
        tagged_rev = cc.groupby(["model", "channel"])["attributed_revenue"].transform("sum").to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(tagged_sum > 0, credit.reindex(key).to_numpy() / tagged_sum, 0.0)
            rev_factor = np.where(tagged_rev > 0, revenue.reindex(key).to_numpy() / tagged_rev, factor)
            new_conv = cc["attributed_conversions"].to_numpy() * factor
            new_share = new_conv / total.reindex(cc["model"]).to_numpy()
            scale = np.where(cc["share"].to_numpy() > 0, new_share / cc["share"].to_numpy(), 0.0)
        cc["attributed_conversions"] = new_conv
        cc["attributed_revenue"] = cc["attributed_revenue"].to_numpy() * rev_factor
        cc["share_lower"], cc["share_upper"] = cc["share_lower"] * scale, cc["share_upper"] * scale
        cc["share"] = new_share
        parts.append(cc[columns])
    covered = set(zip(parts[0]["model"], parts[0]["channel"])) if parts else set()
    rest = channel_credit[[(m, c) not in covered for m, c in zip(channel_credit["model"], channel_credit["channel"])]]
    spend = campaign_spend.groupby(["campaign_id", "channel"], as_index=False)["spend"].sum()
    spend = spend[spend["spend"] > 0]
    if not rest.empty and not spend.empty:
        spend["fraction"] = spend["spend"] / spend.groupby("channel")["spend"].transform("sum")
        split = rest.merge(spend[["campaign_id", "channel", "fraction"]], on="channel", how="inner")
        for col in MEASURES:
            split[col] = split[col] * split["fraction"]
        parts.append(split[columns])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c in MEASURES else object) for c in columns})
    return pd.concat(parts, ignore_index=True)


def _with_spend(frame: pd.DataFrame, spend: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    totals = spend.groupby(keys, as_index=False)["spend"].sum()
    out = frame.merge(totals, on=keys, how="left")
    out["spend"] = out["spend"].fillna(0.0)
    out["attributed_roas"] = np.where(out["spend"] > 0, out["attributed_revenue"] / out["spend"].where(out["spend"] > 0), np.nan)
    return out


def build_attribution_tables(
    buckets: pd.DataFrame,
    paths: pd.DataFrame,
    campaign_spend: pd.DataFrame,
    campaign_names: pd.DataFrame | None = None,
    *,
    markov_order: int = 1,
    n_bootstrap: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> AttributionTables:
    """All nine models at channel, campaign and campaign x channel level.

    buckets: `attribution_credit_buckets` (model, bucket, campaign_id, channel, conversions, revenue).
    paths: `conversion_paths` (path, conversions, conversion_value, nulls).
    campaign_spend: spend per campaign and channel over the reporting period (campaign_id, channel, spend).
    campaign_names: optional (channel, campaign_id, campaign_name).
    """
    if buckets.empty or paths.empty:
        raise ValueError(
            "attribution needs converting journeys: attribution_credit_buckets has "
            f"{len(buckets)} rows and conversion_paths {len(paths)} rows"
        )
    unknown = sorted(set(buckets["model"]) - set(RULE_BASED_MODELS))
    if unknown:
        raise ValueError(f"attribution_credit_buckets has unknown models {unknown}; expected {RULE_BASED_MODELS}")
    kwargs = dict(n_bootstrap=n_bootstrap, ci=ci, seed=seed)
    rule_channel = bucket_shares(buckets, ["channel"], **kwargs)
    # A campaign is (channel, campaign_id): platforms number campaigns independently, so one id may
    # name a campaign on two channels, and every campaign merge below keys by both.
    # Touches without a campaign count in their channel; _campaign_credit spreads them (see there).
    rule_cc = _campaign_credit(buckets, rule_channel, campaign_spend, kwargs)

    dd_channel = _data_driven_channel_credit(paths, markov_order=markov_order, **kwargs)
    linear_cc = rule_cc[rule_cc["model"] == "linear"]
    dd_cc = _split_to_campaigns(dd_channel, linear_cc)

    channel = _with_spend(pd.concat([rule_channel, dd_channel], ignore_index=True), campaign_spend, ["channel"])
    campaign_channel = _with_spend(
        pd.concat([rule_cc, dd_cc], ignore_index=True), campaign_spend, ["campaign_id", "channel"]
    )
    campaign = campaign_channel[["model", "campaign_id", "channel", *MEASURES, "spend", "attributed_roas"]].copy()
    # The column is always there (empty without names), so the table keeps one shape for BI.
    keys = ["channel", "campaign_id"]
    names = (campaign_names.drop_duplicates(keys)[[*keys, "campaign_name"]] if campaign_names is not None
             else pd.DataFrame({"channel": [], "campaign_id": [], "campaign_name": []}, dtype=object))
    named = campaign[keys].merge(names, on=keys, how="left")["campaign_name"]
    campaign.insert(2, "campaign_name", named.astype(object).where(named.notna(), None).to_numpy())

    order = {m: i for i, m in enumerate(ALL_MODELS)}
    for frame in (channel, campaign, campaign_channel):
        frame.sort_values(by=["model", frame.columns[1]], key=lambda s: s.map(order) if s.name == "model" else s,
                          inplace=True, ignore_index=True)
    comparison = (
        channel.pivot_table(index="channel", columns="model", values="share", aggfunc="sum")
        .reindex(columns=[m for m in ALL_MODELS if m in set(channel["model"])])
        .reset_index()
    )
    comparison.columns.name = None
    return AttributionTables(channel=channel, campaign=campaign, campaign_channel=campaign_channel, comparison=comparison)


def check_attribution(tables: AttributionTables, observed_conversions: float, tol: float = 1e-9) -> list[CheckOutcome]:
    """The attribution invariants, named as the asset checks that report them."""
    ch = tables.channel
    share_sums = ch.groupby("model")["share"].sum()
    worst_share = float((share_sums - 1).abs().max())
    credited = ch.groupby("model")["attributed_conversions"].sum()
    worst_credit = float((credited - observed_conversions).abs().max())
    outside = pd.concat(
        [f[(f["share_lower"] > f["share"] + tol) | (f["share_upper"] < f["share"] - tol)].assign(level=lvl)
         for lvl, f in (("channel", ch), ("campaign", tables.campaign), ("campaign_channel", tables.campaign_channel))]
    )
    negative = pd.concat(
        [f[(f["attributed_conversions"] < -tol) & ~f["model"].isin(MODELS_ALLOWING_NEGATIVE_CREDIT)]
         for f in (ch, tables.campaign, tables.campaign_channel)]
    )
    return [
        CheckOutcome(
            "shares_sum_to_one", worst_share <= tol,
            f"largest deviation of a model's channel shares from 1: {worst_share:.3g} (tolerance {tol:g})",
            {m: float(v) for m, v in share_sums.items()},
        ),
        CheckOutcome(
            "credited_conversions_match_observed", worst_credit <= max(tol, 1e-9 * observed_conversions),
            f"observed converting journeys {observed_conversions:,.0f}; largest gap of a model's credited "
            f"conversions: {worst_credit:.3g}",
            {m: float(v) for m, v in credited.items()},
        ),
        CheckOutcome(
            "intervals_contain_estimates", outside.empty,
            f"{len(outside)} share intervals do not contain their point estimate",
            {"examples": outside.head(5)[["level", "model", "share", "share_lower", "share_upper"]].to_dict("records")},
        ),
        CheckOutcome(
            "no_negative_credit", negative.empty,
            f"{len(negative)} rows with negative credit; no model here may give negative credit",
            {"examples": negative.head(5)[["model", "attributed_conversions"]].to_dict("records")},
        ),
    ]
