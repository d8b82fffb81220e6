"""Steady-state response of every channel to its daily spend, with the bootstrap draws behind it.
What the budget optimizer reads, as Python objects or as one flat table published to the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.mmm.data import _non_negative_array
from ml.mmm.transforms import SATURATION_FAMILIES, saturation, saturation_derivative

__all__ = ["RESPONSE_PARAMETER_COLUMNS", "ChannelResponse", "ResponseModel"]

RESPONSE_PARAMETER_COLUMNS = [
    "channel", "draw", "coefficient", "saturation_half", "saturation_shape", "adstock_decay",
    "current_daily_spend", "baseline_daily", "ci", "saturation_family",
]
# Numeric parameter columns (every column but channel and saturation_family).
_NUMERIC_COLUMNS = [c for c in RESPONSE_PARAMETER_COLUMNS if c not in ("channel", "saturation_family")]
_VALID_RANGES = {
    "coefficient": (">= 0", lambda v: v >= 0),
    "saturation_half": ("> 0", lambda v: v > 0),
    "saturation_shape": (">= 1", lambda v: v >= 1),
    "adstock_decay": ("in [0, 1)", lambda v: (v >= 0) & (v < 1)),
    "current_daily_spend": (">= 0", lambda v: v >= 0),
    "ci": ("in (0, 1)", lambda v: (v > 0) & (v < 1)),
}


@dataclass(frozen=True)
class ChannelResponse:
    """Steady-state response of one channel: ``coefficient * saturation(daily_spend; half, shape)``,
    with the saturation curve of ``saturation_family`` (:func:`ml.mmm.transforms.saturation`).

    The ``*_draws`` arrays hold one value per bootstrap draw; each draw has its own coefficient and,
    when hyperparameter uncertainty is propagated, its own curve (``decay_draws`` records the draw's
    adstock decay, which does not change a steady-state response; ``family_draws`` the draw's
    saturation family, all ``saturation_family`` when left out).
    """

    channel: str
    coefficient: float
    adstock_decay: float
    saturation_half: float
    saturation_shape: float
    current_daily_spend: float
    coefficient_draws: np.ndarray
    half_draws: np.ndarray
    shape_draws: np.ndarray
    decay_draws: np.ndarray
    saturation_family: str = "hill"
    family_draws: np.ndarray | None = None

    def __post_init__(self) -> None:
        families = self.draw_families
        unknown = sorted(set(families.tolist()).union([self.saturation_family]).difference(SATURATION_FAMILIES))
        if unknown:
            raise ValueError(
                f"channel {self.channel!r}: unknown saturation family {unknown}; expected some of "
                f"{list(SATURATION_FAMILIES)}"
            )
        if families.size != self.coefficient_draws.size:
            raise ValueError(
                f"channel {self.channel!r}: {families.size} family draws for {self.coefficient_draws.size} "
                "coefficient draws"
            )

    @property
    def draw_families(self) -> np.ndarray:
        """The saturation family of every bootstrap draw (text array)."""
        if self.family_draws is None:
            return np.full(self.coefficient_draws.size, self.saturation_family, dtype=object)
        return np.asarray(self.family_draws, dtype=object)

    def _curve_draws(self, x: np.ndarray, derivative: bool) -> np.ndarray:
        expand = (-1,) + (1,) * x.ndim
        beta, half, shape = (a.reshape(expand) for a in (self.coefficient_draws, self.half_draws, self.shape_draws))
        families = self.draw_families
        curve = saturation_derivative if derivative else saturation
        out = np.empty((families.size, *x.shape))
        for family in set(families.tolist()):
            rows = families == family
            out[rows] = beta[rows] * curve(x[None, ...], half[rows], shape[rows], family)
        return out

    def response(self, daily_spend: np.ndarray, draws: bool = False) -> np.ndarray:
        x = np.asarray(daily_spend, dtype=float)
        if draws:
            return self._curve_draws(x, derivative=False)
        return self.coefficient * saturation(x, self.saturation_half, self.saturation_shape, self.saturation_family)

    def marginal(self, daily_spend: np.ndarray, draws: bool = False) -> np.ndarray:
        x = np.asarray(daily_spend, dtype=float)
        if draws:
            return self._curve_draws(x, derivative=True)
        return self.coefficient * saturation_derivative(
            x, self.saturation_half, self.saturation_shape, self.saturation_family)


@dataclass(frozen=True)
class ResponseModel:
    """Steady-state daily revenue as a function of every channel's daily spend, with bootstrap draws.

    Attributes
    ----------
    responses:
        Per-channel :class:`ChannelResponse`, in the model's channel order; every channel has the
        same number of draws (draw ``b`` of all channels comes from one bootstrap replicate).
    baseline_daily:
        Average daily revenue without media over the model window's fitted days.
    ci:
        Interval coverage the model was fitted for; the default coverage of intervals built on it.
    """

    responses: Mapping[str, ChannelResponse]
    baseline_daily: float
    ci: float

    def __post_init__(self) -> None:
        sizes = {
            name: {r.coefficient_draws.size, r.half_draws.size, r.shape_draws.size, r.decay_draws.size}
            for name, r in self.responses.items()
        }
        if not sizes or len(set().union(*sizes.values())) != 1:
            raise ValueError(
                "a ResponseModel needs at least one channel and the same number of draws in every "
                f"channel and parameter; got draw counts {sizes}"
            )

    @classmethod
    def from_parameters(cls, parameters: pd.DataFrame) -> ResponseModel:
        """Rebuild the model from :meth:`response_parameters`, e.g. as read back from the warehouse.

        Columns other than :data:`RESPONSE_PARAMETER_COLUMNS` (``run_id``, ``generated_at``) are
        ignored; a table without ``saturation_family`` (published before it existed) is read as Hill
        throughout. The row order does not matter (a warehouse need not keep it): channels come out
        sorted by name, as :func:`~ml.mmm.data.daily_frame` orders them, and draws by number.

        Raises
        ------
        ValueError
            A missing column, a missing or non-finite value, a value out of range, a channel
            without draw 0 or without bootstrap draws, channels with different draws, or a
            ``baseline_daily``/``ci`` that differs between rows; the message names the column,
            channel and draws concerned.
        """
        table = _checked_parameters(parameters)
        responses = {}
        for name, rows in table.sort_values(["channel", "draw"]).groupby("channel", sort=False):
            point, draws = rows.iloc[0], rows.iloc[1:]
            responses[name] = ChannelResponse(
                channel=name,
                coefficient=float(point["coefficient"]),
                adstock_decay=float(point["adstock_decay"]),
                saturation_half=float(point["saturation_half"]),
                saturation_shape=float(point["saturation_shape"]),
                current_daily_spend=float(point["current_daily_spend"]),
                coefficient_draws=draws["coefficient"].to_numpy(dtype=float),
                half_draws=draws["saturation_half"].to_numpy(dtype=float),
                shape_draws=draws["saturation_shape"].to_numpy(dtype=float),
                decay_draws=draws["adstock_decay"].to_numpy(dtype=float),
                saturation_family=str(point["saturation_family"]),
                family_draws=draws["saturation_family"].to_numpy(dtype=object),
            )
        return cls(
            responses=responses,
            baseline_daily=float(table["baseline_daily"].iloc[0]),
            ci=float(table["ci"].iloc[0]),
        )

    def response_parameters(self) -> pd.DataFrame:
        """Everything the model holds as one flat numeric table: one row per channel and draw.

        Published as ``predictions.mmm_response_parameters``; :meth:`from_parameters` rebuilds an
        identical model from it alone (channels sorted by name, the order of a model fitted on
        :func:`~ml.mmm.data.daily_frame`). Rows are in the model's channel order, then by draw.
        Columns:

        ``channel``
            Channel name (text).
        ``draw``
            0 for the point estimate, 1..n for the bootstrap draws (integer).
        ``coefficient``
            Daily revenue the channel approaches at full saturation (``>= 0``).
        ``saturation_half``
            Daily spend at half of that (Hill half point, ``> 0``, in money per day).
        ``saturation_shape``
            Hill shape (``>= 1``; above 1 the curve is S-shaped); 1 and unused for the exponential.
        ``adstock_decay``
            Share of yesterday's adstock kept today (``[0, 1)``); it sets how spend carries over
            but not the steady-state response.
        ``current_daily_spend``
            The channel's average daily spend over the model window, the same on every row of the
            channel.
        ``baseline_daily``
            Average daily revenue without media (the non-media part of :meth:`predict`), the same on
            every row.
        ``ci``
            Interval coverage the model was fitted for, the same on every row.
        ``saturation_family``
            The draw's saturation curve (text): ``hill``, ``coefficient * u^s / (1 + u^s)``, or
            ``exponential``, ``coefficient * (1 - 2^(-u))``, with ``u = daily spend / saturation_half``.
        """
        parts = []
        for name, r in self.responses.items():
            parts.append(pd.DataFrame({
                "channel": name,
                "draw": np.arange(r.coefficient_draws.size + 1, dtype=np.int64),
                "coefficient": np.concatenate([[r.coefficient], r.coefficient_draws]),
                "saturation_half": np.concatenate([[r.saturation_half], r.half_draws]),
                "saturation_shape": np.concatenate([[r.saturation_shape], r.shape_draws]),
                "adstock_decay": np.concatenate([[r.adstock_decay], r.decay_draws]),
                "current_daily_spend": float(r.current_daily_spend),
                "baseline_daily": float(self.baseline_daily),
                "ci": float(self.ci),
                "saturation_family": np.concatenate([[r.saturation_family], r.draw_families]).astype(object),
            }))
        return pd.concat(parts, ignore_index=True)[RESPONSE_PARAMETER_COLUMNS]

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.responses)

    @property
    def n_draws(self) -> int:
        """Bootstrap draws per channel."""
        return next(iter(self.responses.values())).coefficient_draws.size

    @property
    def current_daily_spend(self) -> pd.Series:
        """Average daily spend per channel over the model window."""
        return pd.Series(
            {c: r.current_daily_spend for c, r in self.responses.items()}, name="daily_spend", dtype=float
        )

    def _response(self, channel: str) -> ChannelResponse:
        try:
            return self.responses[channel]
        except KeyError:
            raise ValueError(
                f"unknown channel {channel!r}; the model has channels {list(self.responses)}"
            ) from None

    def channel_response(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """Steady-state daily incremental revenue of ``channel`` at each daily spend.

        ``daily_spend`` is any array-like of non-negative daily spends; the result has its shape, or
        ``(n_draws, *shape)`` with ``draws=True`` (one row per bootstrap draw).
        """
        x = _non_negative_array(daily_spend, f"daily_spend for {channel!r}")
        return self._response(channel).response(x, draws=draws)

    def channel_marginal_roas(self, channel: str, daily_spend: Any, draws: bool = False) -> np.ndarray:
        """d(daily revenue)/d(daily spend) of ``channel`` at each daily spend (same shapes as above)."""
        x = _non_negative_array(daily_spend, f"daily_spend for {channel!r}")
        return self._response(channel).marginal(x, draws=draws)

    def predict(self, spend: Mapping[str, float] | pd.Series | pd.DataFrame) -> float | np.ndarray:
        """Steady-state daily revenue: the window's average baseline plus every channel's response.

        ``spend`` gives the daily spend of every channel: a mapping/Series (returns a float) or a
        DataFrame with one column per channel (returns one prediction per row).
        """
        if isinstance(spend, pd.DataFrame):
            columns = {c: spend[c] for c in spend.columns}
            provided = set(map(str, spend.columns))
        else:
            columns = dict(spend.items())
            provided = set(map(str, columns))
        missing = [c for c in self.responses if c not in provided]
        unknown = sorted(provided.difference(self.responses))
        if missing or unknown:
            raise ValueError(
                f"predict needs daily spend for exactly the model's channels {list(self.responses)}; "
                f"missing {missing}, unknown {unknown}"
            )
        total = self.baseline_daily
        for channel, response in self.responses.items():
            x = _non_negative_array(columns[channel], f"spend[{channel!r}]")
            total = total + response.response(x)
        if isinstance(spend, pd.DataFrame):
            return np.asarray(total, dtype=float)
        return float(total)


# --------------------------------------------------------------------------- reading the parameters back


def _checked_parameters(parameters: pd.DataFrame) -> pd.DataFrame:
    """The parameter columns with numeric types, or a ``ValueError`` saying what is wrong and where."""
    if not isinstance(parameters, pd.DataFrame):
        raise TypeError(f"ResponseModel.from_parameters needs a pandas DataFrame, got {type(parameters).__name__}")
    where = "response parameters (predictions.mmm_response_parameters)"
    if "saturation_family" not in parameters.columns:
        parameters = parameters.assign(saturation_family="hill")  # published before the family existed
    missing = [c for c in RESPONSE_PARAMETER_COLUMNS if c not in parameters.columns]
    if missing:
        raise ValueError(
            f"{where} are missing column(s) {missing}; they have {list(parameters.columns)}. Publish the "
            "whole table MediaMixResult.response_parameters() returns"
        )
    if parameters.empty:
        raise ValueError(f"{where} have no rows: the media-mix model has not published any channel")
    table = parameters.loc[:, RESPONSE_PARAMETER_COLUMNS].reset_index(drop=True)
    if table["channel"].isna().any():
        raise ValueError(f"{where}: column 'channel' has {int(table['channel'].isna().sum())} missing value(s)")
    table["channel"] = table["channel"].astype(str)

    families = table["saturation_family"]
    bad = ~families.isin(SATURATION_FAMILIES).to_numpy()
    if bad.any():
        raise ValueError(
            f"{where}: column 'saturation_family' must be one of {list(SATURATION_FAMILIES)}; {int(bad.sum())} "
            f"value(s) are not ({sorted(set(map(str, families[bad])))[:5]}), {_rows_named(table, bad)}"
        )
    table["saturation_family"] = families.astype(str)
    for column in _NUMERIC_COLUMNS:
        try:
            values = pd.to_numeric(table[column]).astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: column {column!r} must be numeric, got dtype {table[column].dtype}") from None
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            raise ValueError(
                f"{where}: column {column!r} has {int(bad.sum())} missing or infinite value(s), "
                f"{_rows_named(table, bad)}"
            )
        table[column] = values
    if (table["draw"] != table["draw"].round()).any():
        raise ValueError(f"{where}: column 'draw' must hold whole numbers (0 = point estimate, 1..n = draws)")
    table["draw"] = table["draw"].astype(np.int64)

    for column, (allowed, valid) in _VALID_RANGES.items():
        bad = ~valid(table[column].to_numpy())
        if bad.any():
            raise ValueError(
                f"{where}: column {column!r} must be {allowed}; {int(bad.sum())} value(s) are not, "
                f"{_rows_named(table, bad)}"
            )
    for column in ("baseline_daily", "ci"):
        distinct = table[column].unique()
        if len(distinct) > 1:
            raise ValueError(
                f"{where}: column {column!r} must hold one value on every row, got {sorted(distinct)[:5]}; "
                "the rows come from more than one model run"
            )
    _check_draws(table, where)
    return table


def _check_draws(table: pd.DataFrame, where: str) -> None:
    """Every channel has draw 0 and the same bootstrap draws 1..n, each once."""
    expected: tuple[str, int] | None = None
    for name, draws in table.groupby("channel")["draw"]:
        numbers = np.sort(draws.to_numpy())
        repeated = np.unique(numbers[1:][numbers[1:] == numbers[:-1]])
        if repeated.size:
            raise ValueError(f"{where}: channel {name!r} has draw(s) {repeated[:5].tolist()} more than once")
        if numbers[0] != 0:
            raise ValueError(f"{where}: channel {name!r} has no draw 0 (the point estimate)")
        if numbers.size == 1:
            raise ValueError(
                f"{where}: channel {name!r} has only draw 0 and no bootstrap draws; intervals need them. "
                "Publish the table with every draw"
            )
        if numbers[-1] != numbers.size - 1:
            gaps = np.setdiff1d(np.arange(numbers[-1] + 1), numbers)
            raise ValueError(f"{where}: channel {name!r} lacks draw(s) {gaps[:5].tolist()} between 0 and {numbers[-1]}")
        if expected is None:
            expected = (name, numbers.size - 1)
        elif numbers.size - 1 != expected[1]:
            raise ValueError(
                f"{where}: channel {name!r} has {numbers.size - 1} bootstrap draws but {expected[0]!r} has "
                f"{expected[1]}; every channel needs the same draws"
            )


def _rows_named(table: pd.DataFrame, bad: np.ndarray) -> str:
    channels = list(dict.fromkeys(table.loc[bad, "channel"]))
    draws = list(dict.fromkeys(table.loc[bad, "draw"]))
    shown = [int(d) if isinstance(d, float) and float(d).is_integer() else d for d in draws[:5]]
    return f"channel(s) {channels[:5]} at draw(s) {shown}"
