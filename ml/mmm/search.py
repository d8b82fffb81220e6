"""The search for each channel's adstock and saturation curve: candidate grid and prior, coordinate
descent on the criterion, pseudo-Bayesian-model-averaging weights and the consensus choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.mmm.data import _Window
from ml.mmm.regression import _Calibration, _CrossValidator, _expanding_folds, _Problem
from ml.mmm.transforms import SATURATION_FAMILIES, adstock, exponential_saturation, hill_saturation

__all__ = [
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_DECAY_GRID",
    "DEFAULT_DELAY_GRID",
    "DELAYED_DELAY_GRID",
    "DEFAULT_HALF_GRID",
    "DEFAULT_HYPERPARAMETER_PRIOR",
    "DEFAULT_SATURATION_FAMILIES",
    "DEFAULT_SHAPE_GRID",
]

# Adstock decay per day (share of yesterday's adstock kept today).
DEFAULT_DECAY_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Half-saturation as a multiple of the channel's average daily spend on days with spend in the window.
# Days from spend to peak effect (delayed-geometric kernel, see ml.mmm.transforms.delayed_adstock). Delay 0
# takes every decay in the decay grid; each longer delay only the decays in _DELAYED_DECAYS, which keeps
# the candidate count (and the fit time) within 1.6x of geometric carryover alone. The default lets
# the search choose delayed carryover: chosen on the benchmark's `choose` seeds (100-119) together
# with robust=True, where it raised the share of major channels within 25% on the second family from
# 31% to 38% (identifiable ones 56% -> 75%) and on the demo family from 94% to 95%; the figures on the
# `report` seeds are in docs/mmm_accuracy.md.
DEFAULT_DELAY_GRID: tuple[int, ...] = (0, 2, 4, 7)
DELAYED_DELAY_GRID: tuple[int, ...] = (0, 2, 4, 7)
_DELAYED_DECAYS: tuple[float, ...] = (0.4, 0.7)
DEFAULT_HALF_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
DEFAULT_SHAPE_GRID: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
# Saturation families each channel's curve is chosen among (ml.mmm.transforms.SATURATION_FAMILIES).
# Exponential candidates take every half point and decay/delay but no shape (one per kernel and half
# point), which adds a quarter to the candidates of Hill alone. Not a gain on every seed set: on 5 of
# the `choose` seeds the media family's major channels within 25% went from 39% (Hill alone, variant
# `hill_only`) to 35% (46 rows) with the demo at 100% either way; on the 20 `report` seeds from 44% to
# 49% (coverage 91% -> 94%) and the demo from 88.1% to 87.3% (one channel of 134); docs/mmm_accuracy.md.
DEFAULT_SATURATION_FAMILIES: tuple[str, ...] = ("hill", "exponential")
# Ridge strength on standardized media features, relative to the number of training days.
DEFAULT_ALPHA_GRID: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
# Prior on every channel's curve: (centre, standard deviation) of independent normals on the adstock
# decay, on log(half-saturation multiple) (centre given as the multiple) and on the Hill shape.
# Weakly informative and channel-agnostic: carry-over of days not weeks, half saturation near the
# spend a channel actually runs at, concave rather than S-shaped unless the data insist. For
# comparison, Google's Meridian centres its Hill half point at 0.8x median spend (sd 0.8) and fixes
# the Hill slope at 1 by default; LightweightMMM uses Beta(2, 1) on the adstock decay.
DEFAULT_HYPERPARAMETER_PRIOR: dict[str, tuple[float, float]] = {
    "adstock_decay": (0.4, 0.3),
    "saturation_half": (1.0, 0.8),
    "saturation_shape": (1.0, 0.6),
    "adstock_delay": (0.0, 5.0),
}


def _candidate_grid(
    decay_grid: Sequence[float], delay_grid: Sequence[int], half_grid: Sequence[float], shape_grid: Sequence[float],
    families: Sequence[str] = ("hill",),
) -> np.ndarray:
    """Candidates ``(decay, half multiple, shape, delay, family code)``: delay 0 with every decay, longer
    delays with a few; Hill (code 0) with every shape, exponential (code 1) with shape 1 (unused)."""
    kernels = [(float(d), 0) for d in decay_grid]
    kernels += [(d, int(lag)) for lag in delay_grid if lag > 0 for d in _DELAYED_DECAYS]
    rows = []
    for family in families:
        code = SATURATION_FAMILIES.index(family)
        shapes = shape_grid if family == "hill" else (1.0,)
        rows += [(d, h, s, lag, code) for d, lag in kernels for h in half_grid for s in shapes]
    return np.array(rows, dtype=float)


def _prior_penalty(candidates: np.ndarray, prior: Mapping[str, tuple[float, float]] | None) -> np.ndarray:
    """Negative log prior density (up to a constant) of each (decay, half multiple, shape) candidate."""
    prior = {**DEFAULT_HYPERPARAMETER_PRIOR, **(prior or {})}
    unknown = sorted(set(prior).difference(DEFAULT_HYPERPARAMETER_PRIOR))
    if unknown:
        raise ValueError(
            f"hyperparameter_prior has unknown key(s) {unknown}; expected some of {list(DEFAULT_HYPERPARAMETER_PRIOR)}"
        )
    for name, spec in prior.items():
        centre, sd = (float(v) for v in spec)
        if not (math.isfinite(centre) and math.isfinite(sd) and sd > 0) or (name == "saturation_half" and centre <= 0):
            raise ValueError(
                f"hyperparameter_prior[{name!r}] must be (centre, sd) with a finite centre"
                f"{' > 0' if name == 'saturation_half' else ''} and sd > 0, got {tuple(spec)}"
            )
    (d0, d_sd), (h0, h_sd), (s0, s_sd), (l0, l_sd) = (prior[k] for k in DEFAULT_HYPERPARAMETER_PRIOR)
    delay = candidates[:, 3] if candidates.shape[1] > 3 else np.zeros(len(candidates))
    return 0.5 * (
        ((candidates[:, 0] - d0) / d_sd) ** 2
        + (np.log(candidates[:, 1] / h0) / h_sd) ** 2
        + ((candidates[:, 2] - s0) / s_sd) ** 2
        + ((delay - l0) / l_sd) ** 2
    )


def _candidate_features(spend_history: np.ndarray, n: int, candidates: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Saturation(adstock) of every channel under every (decay, half, shape, delay, family) candidate, last
    ``n`` days only."""
    out = np.empty((spend_history.shape[0], len(candidates), n))
    family = candidates[:, 4] if candidates.shape[1] > 4 else np.zeros(len(candidates))
    for decay, delay in np.unique(candidates[:, [0, 3]], axis=0):
        adstocked = adstock(spend_history, float(decay), int(delay))[:, None, -n:]
        kernel = (candidates[:, 0] == decay) & (candidates[:, 3] == delay)
        ks = np.flatnonzero(kernel & (family == 0))
        if ks.size:
            half = candidates[ks, 1][None, :, None] * scale[:, None, None]
            out[:, ks, :] = hill_saturation(adstocked, half, candidates[ks, 2][None, :, None])
        ks = np.flatnonzero(kernel & (family == 1))
        if ks.size:
            half = candidates[ks, 1][None, :, None] * scale[:, None, None]
            out[:, ks, :] = exponential_saturation(adstocked, half)
    return out


def _coordinate_search(
    cv: _CrossValidator, candidates: np.ndarray, alpha_grid: Sequence[float], max_passes: int,
    penalty: np.ndarray,
) -> dict[str, Any]:
    """Coordinate descent over per-channel candidates, then the ridge strength.

    The criterion is ``SSE + 2 sigma^2 * sum_c penalty[choice_c]``: ``cv``'s squared error plus the
    prior's negative log density in units of the Gaussian log likelihood, with ``sigma^2`` the
    current mean squared error (a plug-in MAP). With a zero penalty it is the plain error.
    Also returns, per channel, the squared errors of every candidate (per scored day) at the final
    choice of the others, which the caller turns into pseudo-Bayesian-model-averaging weights.
    """
    start = np.argmin(
        np.abs(candidates[:, 0] - 0.3) + np.abs(np.log(candidates[:, 1])) + np.abs(candidates[:, 2] - 1.0)
    )
    choice = np.full(cv.n_channels, start, dtype=int)
    alphas = np.asarray(alpha_grid, dtype=float)
    alpha = float(alphas[np.argmin(np.abs(np.log10(alphas + 1e-4) + 2.0))])
    best = cv.sse(choice, alpha)  # plain squared error of the current choice
    errors = np.empty((cv.n_channels, cv.n_candidates, cv.n_test))
    passes = 0
    for passes in range(1, max_passes + 1):
        changed = False
        for channel in range(cv.n_channels):
            errors[channel] = cv.channel_errors(choice, alpha, channel)
            sse = errors[channel].sum(axis=1)
            weight = 2.0 * best / max(cv.n_test, 1)
            criterion = sse + weight * penalty
            current = best + weight * penalty[choice[channel]]
            k = int(np.argmin(criterion))
            if criterion[k] < current - 1e-9 * abs(current) and k != choice[channel]:
                choice[channel], best, changed = k, float(sse[k]), True
        alpha_sse = np.array([cv.sse(choice, a) for a in alphas])
        j = int(np.argmin(alpha_sse))
        if alpha_sse[j] < best * (1.0 - 1e-9) and alphas[j] != alpha:
            alpha, best, changed = float(alphas[j]), float(alpha_sse[j]), True
        if not changed:
            break
    if changed:
        # The error profiles must describe the final choice; refresh them after a last move.
        for channel in range(cv.n_channels):
            errors[channel] = cv.channel_errors(choice, alpha, channel)
    return {"choice": choice, "alpha": alpha, "cv_sse": best, "errors": errors, "passes": passes}


def _candidate_weights(sse: np.ndarray, best_sse: float, n_test: float, penalty: np.ndarray) -> np.ndarray:
    """Pseudo-BMA weights ``prior_k * exp(-(SSE_k - SSE_min) / (2 sigma^2))`` from scored errors.

    ``sse`` is ``(..., candidates)``; ``sigma^2`` is the chosen model's mean squared error, so the
    weights are proportional to each candidate's Gaussian likelihood of the scored days times its
    prior density ``exp(-penalty_k)``.
    """
    sigma2 = max(best_sse / max(n_test, 1), 1e-300)
    log_weight = -sse / (2.0 * sigma2) - penalty
    weights = np.exp(log_weight - log_weight.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def _consensus_choice(
    full: _Problem, feature_sums: np.ndarray, choice: np.ndarray, alpha: float, weights: np.ndarray
) -> np.ndarray:
    """Per channel, the well-supported candidate whose window contribution is nearest the weighted mean.

    Candidates the CV cannot tell apart can still imply very different contributions, because the
    data pin down the slope of the response over the observed spend much better than its level
    (how much revenue would vanish at zero spend). Averaging over them under the CV weights and
    keeping the candidate closest to that average gives a stabler, single coherent curve.
    """
    choice = choice.copy()
    for channel in range(full.n_channels):
        coef, _, _, scale = full.channel_candidates(choice, alpha, channel)
        contribution = coef[:, channel] / scale * feature_sums[channel]
        w = weights[channel]
        target = float(w @ contribution)
        supported = np.flatnonzero(w >= 0.05 * w.max())
        choice[channel] = supported[np.argmin(np.abs(contribution[supported] - target))]
    return choice


@dataclass(frozen=True)
class _CurveChoice:
    """Each channel's chosen curve and ridge strength, and the scored errors the bootstrap redraws from."""

    choice: np.ndarray  # candidate index per channel
    alpha: float  # ridge strength for the chosen curves, by the window's cross-validation
    weights: np.ndarray  # (channels, candidates) pseudo-BMA weights
    errors: np.ndarray  # (channels, candidates, scored days) squared errors behind the weights
    sse: float  # the criterion's squared error at the search's optimum
    passes: int


def _choose_curves(
    window: _Window,
    curve_features: np.ndarray,
    candidates: np.ndarray,
    penalty: np.ndarray,
    window_cv: _CrossValidator,
    *,
    criterion: str,
    selection: str,
    alpha_grid: Sequence[float],
    max_passes: int,
    cv_horizon_days: int,
    calibration: _Calibration | None = None,
) -> _CurveChoice:
    """Search every channel's curve on the curve history, then pick the ridge strength on the window.

    ``curve_features`` is :func:`_candidate_features` over the curve history; ``window_cv`` scores
    the window's last days of it. See :func:`~ml.mmm.fitting.fit_media_mix_model` for the method.
    """
    n_channels = curve_features.shape[0]
    if criterion == "cv":
        curve_folds = _expanding_folds(
            window.curve_rows, window.n_curve_days, cv_horizon_days, window.curve_controls.shape[1] + n_channels
        )
        scored = _CrossValidator(curve_features, window.curve_revenue, window.curve_controls, curve_folds, calibration)
        search = _coordinate_search(scored, candidates, alpha_grid, max_passes, penalty)
    else:
        # Curves by in-sample least squares (profile likelihood; a ridge would only raise the error).
        in_sample = [(window.curve_rows, window.curve_rows)]
        scored = _CrossValidator(curve_features, window.curve_revenue, window.curve_controls, in_sample, calibration)
        search = _coordinate_search(scored, candidates, (0.0,), max_passes, penalty)
    weights = _candidate_weights(search["errors"].sum(axis=2), search["cv_sse"], scored.n_test, penalty)

    choice = search["choice"]
    if selection == "consensus":
        curve_problem = _Problem(curve_features, window.curve_revenue, window.curve_controls, window.curve_rows,
                                 calibration=calibration)
        window_feature_sums = curve_features[:, :, -window.n_days:].sum(axis=2)
        choice = _consensus_choice(curve_problem, window_feature_sums, choice, search["alpha"], weights)
    alpha_sse = [window_cv.sse(choice, a) for a in alpha_grid]
    alpha = float(alpha_grid[int(np.argmin(alpha_sse))])
    return _CurveChoice(
        choice=choice, alpha=alpha, weights=weights, errors=search["errors"], sse=search["cv_sse"],
        passes=int(search["passes"]),
    )
