"""Journey-level bootstrap shared by every attribution model: one resampling scheme, one interval rule.

Draws are matrices of (path, outcome) cell counts, so a model evaluates a chunk of draws with one sparse product.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.attribution.paths import PathTable

DEFAULT_DRAWS = 200
DEFAULT_CI = 0.95
# Cells x draws held at once: 4M int64 + float64 values is ~64 MB.
_CHUNK_CELLS = 4_000_000
# Below this many journeys numpy's multinomial is already cheap.
_DIRECT_MULTINOMIAL_MAX = 10_000
# Poisson means are shrunk so the Poisson total exceeds the journey count with probability ~3e-5.
_POISSON_SHRINK_SD = 4.0

Statistic = Callable[[np.ndarray], np.ndarray]


def check_bootstrap_args(n_bootstrap: int, ci: float) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0 (0 turns intervals off), got {n_bootstrap!r}.")
    if isinstance(ci, bool) or not (isinstance(ci, (float, int, np.floating)) and 0 < ci < 1):
        raise ValueError(f"ci must be a coverage level strictly between 0 and 1 (e.g. 0.95), got {ci!r}.")


def multinomial_draws(rng: np.random.Generator, total: int, counts: np.ndarray, n_draws: int) -> np.ndarray:
    """``n_draws`` exact Multinomial(``total``, ``counts / total``) vectors, returned as ``(cells, n_draws)``.

    numpy's multinomial walks the cells with one conditional binomial each, which dominates the
    bootstrap at 10^5 cells. Instead: independent Poisson counts with means ``counts * s`` (``s``
    slightly below 1) are, given their sum ``m``, Multinomial(``m``, p); adding an independent
    Multinomial(``total - m``, p) of the few missing journeys gives exactly Multinomial(``total``, p).
    Draws with ``m > total`` (rare by the choice of ``s``) are redrawn, which conditions only on ``m``
    and so keeps the result exact.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_cells = counts.size
    if total <= _DIRECT_MULTINOMIAL_MAX:
        return np.ascontiguousarray(rng.multinomial(total, counts / total, size=n_draws).T)
    shrink = 1.0 - _POISSON_SHRINK_SD / np.sqrt(total)
    means = counts * shrink
    draws = rng.poisson(means[:, None], size=(n_cells, n_draws))
    sums = draws.sum(axis=0)
    over = np.flatnonzero(sums > total)
    while over.size:
        draws[:, over] = rng.poisson(means[:, None], size=(n_cells, over.size))
        sums[over] = draws[:, over].sum(axis=0)
        over = over[sums[over] > total]
    missing = total - sums
    boundaries = np.cumsum(counts)
    picks = np.searchsorted(boundaries, rng.integers(0, total, size=int(missing.sum())), side="right")
    np.add.at(draws, (picks, np.repeat(np.arange(n_draws), missing)), 1)
    return draws


@dataclass(frozen=True)
class JourneyCells:
    """A path table's journeys grouped in (path, outcome) cells: first the converted cells of rows
    with conversions, then the non-converted cells of rows with nulls.

    With ``pooled_nulls`` all non-converted journeys share one cell. Resampled conversion counts
    have exactly the same distribution (merging multinomial cells merges their counts), and
    statistics that only read conversions (Shapley, heuristics) then draw far fewer variates.
    """

    n_rows: int
    conv_rows: np.ndarray
    null_rows: np.ndarray
    counts: np.ndarray
    value_per_conversion: np.ndarray
    pooled_nulls: bool = False

    @classmethod
    def from_table(cls, table: PathTable, pool_nulls: bool = False) -> JourneyCells:
        for name, values in (("conversions", table.conversions), ("non-converting journeys", table.nulls)):
            fractional = np.flatnonzero(values != np.round(values))
            if fractional.size:
                raise ValueError(
                    f"the bootstrap resamples whole journeys, but {name} are fractional in {fractional.size} "
                    f"row(s) (first at position {int(fractional[0])}: {values[fractional[0]]!r}); round the "
                    "counts or use n_bootstrap=0."
                )
        conv_rows = np.flatnonzero(table.conversions > 0)
        null_rows = np.flatnonzero(table.nulls > 0)
        null_counts = table.nulls[null_rows]
        if pool_nulls:
            null_counts = null_counts.sum(keepdims=True)[null_counts.sum(keepdims=True) > 0]
            null_rows = np.zeros(0, dtype=np.int64)
        return cls(
            n_rows=table.n_rows,
            conv_rows=conv_rows,
            null_rows=null_rows,
            counts=np.concatenate([table.conversions[conv_rows], null_counts]).astype(np.int64),
            value_per_conversion=table.value[conv_rows] / table.conversions[conv_rows],
            pooled_nulls=pool_nulls,
        )

    @property
    def n_cells(self) -> int:
        return int(self.counts.size)

    @property
    def n_null_cells(self) -> int:
        return self.n_cells - int(self.conv_rows.size)

    def operator(self, matrix: sp.spmatrix | np.ndarray, kind: str) -> sp.csc_matrix:
        """Lift ``matrix`` (``k x n_rows``, applied to per-row counts) to act on cell counts.

        ``kind`` picks the per-row quantity the matrix is applied to: ``"journeys"`` (conversions
        plus nulls), ``"conversions"``, ``"nulls"`` or ``"value"`` (resampled conversions times the
        row's mean value per conversion). The result maps a ``(n_cells, draws)`` block of cell
        counts to ``(k, draws)`` in one product.
        """
        if self.pooled_nulls and kind in ("journeys", "nulls"):
            raise ValueError(f"kind={kind!r} needs per-path null cells; build the cells with pool_nulls=False.")
        matrix = sp.csc_matrix(matrix)
        on_conv = matrix[:, self.conv_rows]
        on_null = matrix[:, self.null_rows]
        zeros_conv = sp.csc_matrix((matrix.shape[0], self.conv_rows.size))
        zeros_null = sp.csc_matrix((matrix.shape[0], self.n_null_cells))
        if kind == "journeys":
            blocks = [on_conv, on_null]
        elif kind == "conversions":
            blocks = [on_conv, zeros_null]
        elif kind == "nulls":
            blocks = [zeros_conv, on_null]
        elif kind == "value":
            blocks = [on_conv @ sp.diags(self.value_per_conversion), zeros_null]
        else:
            raise ValueError(f"kind must be 'journeys', 'conversions', 'nulls' or 'value', got {kind!r}.")
        return sp.hstack(blocks, format="csc")

    def draws(self, n_draws: int = DEFAULT_DRAWS, seed: int | None = 0) -> Iterator[np.ndarray]:
        """Yield bootstrap draws as float ``(n_cells, draws_in_chunk)`` blocks of cell counts.

        Scheme: the table holds ``N = sum(total_conversions + total_null)`` journeys. A draw picks
        ``N`` journeys with replacement, i.e. one multinomial over the cells with probabilities
        ``count / N``. That is the same distribution as a multinomial over paths (probabilities
        proportional to conversions + nulls) followed by a binomial split of each path's draws
        into conversions and nulls at the path's own conversion rate. Results depend only on
        ``seed``, ``n_draws`` and the table.
        """
        rng = np.random.default_rng(seed)
        total = int(self.counts.sum())
        chunk = max(1, _CHUNK_CELLS // max(self.n_cells, 1))
        done = 0
        while done < n_draws:
            b = min(chunk, n_draws - done)
            if total == 0:
                yield np.zeros((self.n_cells, b))
            else:
                yield multinomial_draws(rng, total, self.counts, b).astype(np.float64)
            done += b


def bootstrap_draws(cells: JourneyCells, statistic: Statistic, n_draws: int, seed: int | None) -> np.ndarray:
    """Evaluate ``statistic`` (cell-count block ``(n_cells, b)`` -> ``(b, k)``) on every draw.

    Returns ``(n_draws, k)``. A draw where the statistic is undefined (e.g. no conversions were
    resampled) should come back as NaN; :func:`percentile_interval` drops it and counts it.
    """
    parts = [np.asarray(statistic(block), dtype=np.float64) for block in cells.draws(n_draws, seed)]
    return np.concatenate(parts, axis=0)


@dataclass(frozen=True)
class Interval:
    low: np.ndarray
    high: np.ndarray
    n_clipped: int
    n_failed_draws: int


def percentile_interval(point: np.ndarray, draws: np.ndarray, ci: float = DEFAULT_CI) -> Interval:
    """Percentile interval of ``draws`` (``(n_draws, k)``) at coverage ``ci``, column by column.

    Draws containing NaN are dropped whole (the model was undefined on them). If a point estimate
    falls outside its percentile interval (possible when the estimator is biased and its bootstrap
    distribution skewed) the interval is widened to include it, and ``n_clipped`` counts such
    columns so callers can report it.
    """
    point = np.asarray(point, dtype=np.float64)
    failed = np.isnan(draws).any(axis=1)
    good = draws[~failed]
    if good.shape[0] == 0:
        nan = np.full(point.shape, np.nan)
        return Interval(nan, nan.copy(), 0, int(failed.sum()))
    alpha = (1.0 - ci) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.quantile(good, [alpha, 1.0 - alpha], axis=0)
    outside = (point < low) | (point > high)
    return Interval(np.minimum(low, point), np.maximum(high, point), int(outside.sum()), int(failed.sum()))


def attach_share_intervals(
    frame: pd.DataFrame,
    cells: JourneyCells,
    statistic: Statistic,
    *,
    n_bootstrap: int,
    ci: float,
    seed: int | None,
) -> pd.DataFrame:
    """Add ``share_lower`` / ``share_upper`` (aligned with ``frame['share']``) and record the
    bootstrap settings and diagnostics in ``frame.attrs``."""
    draws = bootstrap_draws(cells, statistic, n_bootstrap, seed)
    interval = percentile_interval(frame["share"].to_numpy(), draws, ci)
    frame["share_lower"] = interval.low
    frame["share_upper"] = interval.high
    frame.attrs.update(
        n_bootstrap=int(n_bootstrap),
        ci=float(ci),
        seed=seed,
        bootstrap_scheme="multinomial over journeys",
        bootstrap_failed_draws=interval.n_failed_draws,
        ci_clipped=interval.n_clipped,
    )
    return frame
