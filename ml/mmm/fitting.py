"""Fitting the media-mix model: :func:`fit_media_mix_model` validates the input, cuts the window,
chooses every channel's curve, fits, bootstraps and assembles the :class:`MediaMixResult`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml.mmm.bootstrap import _block_bootstrap
from ml.mmm.calibration import _calibration, validate_lift_tests
from ml.mmm.data import _check_settings, _model_window, _validated_history, _Window
from ml.mmm.regression import _Calibration, _CrossValidator, _expanding_folds, _fit, _Problem
from ml.mmm.response import ChannelResponse, ResponseModel
from ml.mmm.review import ReviewThresholds, review_channels, spend_floor
from ml.mmm.robust import _residuals, _robust_sd, _robust_window
from ml.mmm.result import MediaMixResult, _channel_table, _decomposition, _diagnostics, _response_curves
from ml.mmm.search import (
    DEFAULT_ALPHA_GRID,
    DEFAULT_DECAY_GRID,
    DEFAULT_DELAY_GRID,
    DEFAULT_HALF_GRID,
    DEFAULT_HYPERPARAMETER_PRIOR,  # noqa: F401 - named in fit_media_mix_model's docstring
    DEFAULT_SATURATION_FAMILIES,
    DEFAULT_SHAPE_GRID,
    _candidate_features,
    _candidate_grid,
    _choose_curves,
    _CurveChoice,
    _prior_penalty,
)
from ml.mmm.transforms import SATURATION_FAMILIES

__all__ = ["fit_media_mix_model"]

# Days the curves and the coefficients are fitted on by default (three years, or all there is); the
# half-hourly asset's config defaults to it too (assets/media_mix.py). Chosen in docs/mmm_accuracy.md.
DEFAULT_CURVE_HISTORY_DAYS = 1095

# Values of fit_media_mix_model's point_estimate.
POINT_ESTIMATES = ("fit", "bootstrap_median", "bootstrap_median_never_low")


def fit_media_mix_model(
    daily: pd.DataFrame,
    *,
    channels: Sequence[str] | None = None,
    lookback_days: int = 180,
    curve_history_days: int = DEFAULT_CURVE_HISTORY_DAYS,
    min_days: int = 60,
    n_bootstrap: int = 100,
    ci: float = 0.95,
    seed: int = 0,
    cv_horizon_days: int = 14,
    block_days: int = 14,
    yearly_fourier_order: int = 1,
    holidays: Iterable[Any] | None = None,
    retail_peaks: bool = True,
    holiday_country: str | None = None,
    criterion: str = "in_sample",
    selection: str = "consensus",
    hyperparameter_uncertainty: bool = True,
    prior_strength: float = 1.0,
    hyperparameter_prior: Mapping[str, tuple[float, float]] | None = None,
    robust: bool = True,
    widen_unbounded_levels: bool = True,
    decay_grid: Sequence[float] = DEFAULT_DECAY_GRID,
    delay_grid: Sequence[int] = DEFAULT_DELAY_GRID,
    half_grid: Sequence[float] = DEFAULT_HALF_GRID,
    shape_grid: Sequence[float] = DEFAULT_SHAPE_GRID,
    saturation_families: Sequence[str] = DEFAULT_SATURATION_FAMILIES,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    max_passes: int = 3,
    curve_points: int = 50,
    curve_max_multiple: float = 3.0,
    lift_tests: pd.DataFrame | None = None,
    level_prior_sd: float | None = 0.5,
    level_prior_uncertainty: bool = True,
    coefficients_on: str = "curve_history",
    coefficient_uncertainty: bool = True,
    level_prior_per_window: bool = True,
    level_prior_centre_on_coefficients: bool = False,
    level_prior_shrink: str | None = None,
    point_estimate: str = "fit",
) -> MediaMixResult:
    """Fit the media-mix model on the last ``lookback_days`` days of ``daily``.

    Model (daily revenue ``y_t`` over the window)::

        y_t = intercept + trend_t + day-of-week_t + yearly Fourier terms_t
              + sum_c beta_c * sat_c(adstock_c(spend_c)_t; half_c, shape_c) + e_t,   beta_c >= 0

    * Saturation is chosen per channel among ``saturation_families`` (default Hill and exponential,
      :data:`~ml.mmm.transforms.SATURATION_FAMILIES`), in the same search as the curve's other
      hyperparameters. Hill allows an S-shape (``shape > 1``, threshold effects) as well as the
      concave ``shape = 1``; the exponential ``1 - 2^(-x / half)`` is concave with a much thinner
      tail (a channel that is close to full saturation at twice its half point). Both are
      parametrized by the half point, "daily spend at half the maximum effect"; the chosen family
      is in ``diagnostics["hyperparameters"][channel]["saturation_family"]`` and on every row of
      the response parameters (``saturation_family``). ``("hill",)`` is the earlier default. Adstock is normalized, computed over the whole of ``daily`` so the window's
      first days carry the spend before it (warm-up), and chosen per channel between geometric
      (:func:`geometric_adstock`, peak on the spend day) and delayed-geometric
      (:func:`~ml.mmm.transforms.delayed_adstock`, peak ``delay`` days later, as for TV and video):
      ``delay_grid`` lists the delays (default ``(0, 2, 4, 7)``; ``(0,)`` is geometric only, the
      earlier default, variant ``geometric_plain`` in docs/mmm_accuracy.md), delay 0 takes every decay of ``decay_grid``,
      longer delays the decays 0.4 and 0.7. Both kernels sum to one, so the
      steady-state response curves (and the budget) do not depend on the kernel; the chosen delay is
      in ``diagnostics["hyperparameters"][channel]["adstock_delay"]``.
    * Robust baseline (``robust``, default on since it helped together with delayed carryover on the
      benchmark's choose seeds; :mod:`ml.mmm.robust`). Before the curve search a
      preliminary least-squares fit on the curve history (every channel at the search's start
      curve) looks for one permanent level shift (a step in the baseline; scanned on histories of a
      year or more against a straight trend, kept when it lowers the squared error by 40 robust
      residual variances) and for outlier days (residual beyond 3 robust standard deviations, at
      most 5% of the days: promotions and outages nobody flagged). The step becomes a control (in
      the window too when it falls inside it); outlier days are left out like holidays
      (``diagnostics["outlier_dates"]``, ``["level_shift_date"]``).
    * Controls (intercept, linear trend, six day-of-week dummies, ``yearly_fourier_order`` yearly
      sin/cos pairs) are unpenalized and unsigned and are projected out exactly
      (Frisch-Waugh-Lovell); the media coefficients solve a non-negative ridge on unit-RMS features
      (``scipy.optimize.nnls`` on the augmented system). Days in ``holidays``, the retail peaks
      (``retail_peaks``: Thanksgiving to Cyber Tuesday, 21 December to 1 January; see
      :mod:`ml.events`) and ``holiday_country``'s public holidays are left out of the regression and
      the CV (as if each had its own indicator) but still count for adstock and for window totals.
    * Curve history. The adstock/saturation curves are chosen on the last ``curve_history_days``
      days (default 1095, three years or all there is; never less than the window); ROAS, contributions and
      intervals are over the window. A channel's carry-over and saturation are properties of the channel,
      and 180 days cannot pin down 24 curve parameters: on the demo generator the best-fitting
      curves on the window alone fitted better than the true curves, and the ROAS of a major channel
      then jumped from one day's window to the next. The longer curve history puts more major
      channels' ROAS near the truth (variants ``default`` and ``window_curves`` in
      docs/mmm_accuracy.md). Over a history longer than the window the baseline gets a
      piecewise-linear trend (a hinge every 90 days) and, from 365 days, at least two yearly
      harmonics; the half point is in daily-spend units, so a channel's saturation point is the
      same spend level throughout. ``curve_history_days=lookback_days`` learns the curves on the
      window alone. Since the coefficients are fitted on the curve history too, three years put more
      major channels near the truth than 540 days (the earlier default, variant ``history_540``):
      more flights of every flighted channel, and more budget moves of the always-on ones.
    * Hyperparameters. Coordinate descent gives each channel in turn the (decay, half, shape) grid
      point with the lowest criterion while the others stay fixed, until nothing changes or
      ``max_passes``. The criterion is the squared error plus ``prior_strength`` times the
      negative log density of ``hyperparameter_prior`` (default
      :data:`DEFAULT_HYPERPARAMETER_PRIOR`: decay 0.4 +- 0.3, half 1x average live spend with a
      log-sd of 0.8, shape 1 +- 0.6), scaled by ``2 sigma^2`` so that it is a Gaussian
      log-posterior (MAP). With ``criterion="in_sample"`` (default) the error is the in-sample
      squared error over the curve history without ridge (profile least squares). With
      ``criterion="cv"`` it is the pooled error of expanding-window folds over the curve history,
      whose test blocks of ``cv_horizon_days`` tile its second half, each trained only on the days
      before it. Either way the ridge strength for the final curves is then chosen by that
      time-series cross-validation on the window. In-sample is the default by measurement: it is
      more accurate and several times faster than CV over the curve history (variants ``default``
      and ``cv`` in docs/mmm_accuracy.md); every CV fold refits on fewer days and extrapolates the
      baseline, so it ranks curves by how stably they forecast rather than by how well they explain.
      Every channel's candidates then get pseudo-BMA weights ``prior_k * exp(-(SSE_k - SSE_min) /
      (2 sigma^2))`` from the criterion's errors. ``selection="best"`` keeps the optimum;
      ``"consensus"`` (default) keeps, among candidates with at least 5% of the top weight, the
      one whose window contribution is nearest the weighted mean: the data fix the slope of a
      response over the observed spend far better than its level, and near-tied candidates can
      differ widely in ROAS, so the weighted consensus is much less erratic than the single
      winner.
    * Coefficients (``coefficients_on``). By default the media coefficients of the chosen curves are
      fitted on the curve history too (its controls: hinged trend, yearly harmonics, level shift) and
      applied to the window's days: the curves already assume that a channel's response did not
      change over the history, and a flighted channel has three times the flights there, where on the
      window alone a few flights are confounded with the baseline (the second benchmark family's
      confidently wrong channels were such cases; docs/mmm_accuracy.md). ``"window"`` fits them on
      the window alone (the earlier default, variant ``window_coefficients``). The level prior's rows
      weigh against the curve history's days as they do against the window's
      (``level_prior_per_window``): more days of a spend that is never low say nothing more about its
      level. With ``coefficient_uncertainty``
      (default) every interval also spans the fit on the other days (the window's, with its own
      bootstrap), so a response that did change lately stays inside the interval. Chosen on the
      benchmark's choose seeds; the figures are in docs/mmm_accuracy.md.
    * Intervals: moving-block residual bootstrap over the window (circular blocks of
      ``block_days``), with the design fixed: it keeps the adstock time structure that resampling
      days would break, keeps weekly and short-range residual autocorrelation inside blocks, and
      costs one NNLS per draw. With ``hyperparameter_uncertainty`` each draw also resamples the
      days behind the criterion's errors, recomputes the candidate weights from them and redraws
      every channel's candidate (pseudo-BMA+), so the intervals include the curve uncertainty the
      data cannot resolve; without it they reflect coefficient noise only and are too narrow
      whenever the curve is uncertain. The ridge strength stays fixed. With
      ``widen_unbounded_levels`` (default) a channel whose spend is never low (10th percentile of
      daily spend above 30% of its mean, the review gate's ``spend_floor``) gets lower bounds of 0
      on ROAS, contribution and share: its level is an extrapolation the bootstrap cannot see. When the
      level prior applies (``level_prior_sd``), every interval also spans the fits without it
      (``level_prior_uncertainty``, on the curve history and on the window), so the prior's own uncertainty reaches every channel's interval. Percentile intervals of the
      draws are rescaled so that the draws' median is the estimate (see
      :func:`ml.mmm.bootstrap._interval`) and widened where needed to contain it.
    * Limits: the baseline is smooth (trend, weekday, yearly cycle); calendar effects that are not
      left out (a December ramp before the peak days, a local sale) leak into channels whose spend
      moves with them; a channel whose spend hardly varies cannot be told apart from the baseline
      (listed in ``diagnostics["flat_spend_channels"]``); curves learnt on a long history assume
      the channel's response did not change over it.

    Parameters
    ----------
    daily:
        Wide frame ``date, revenue, <channel>...`` (see :func:`daily_frame`): one row per consecutive
        day, non-negative spend, no missing values. Rows before the window only feed adstock warm-up.
    channels:
        Spend columns to use; default every column other than ``date`` and ``revenue``.
    lookback_days, min_days:
        Window length, and the fewest days accepted (fewer raises ``ValueError``).
    curve_history_days:
        Days, ending with the window, the adstock/saturation curves are chosen and (with
        ``coefficients_on="curve_history"``) the coefficients fitted on (see above).
    n_bootstrap, ci, seed:
        Bootstrap draws, interval coverage and random seed.
    cv_horizon_days, block_days:
        CV test block length in days, bootstrap block length in days.
    yearly_fourier_order, holidays, retail_peaks, holiday_country:
        Yearly sin/cos pairs in the window's baseline (0 to 3); dates whose revenue should not
        inform the model (outages, local events); whether to leave the retail peak days out; an
        ISO country code whose public holidays are left out too (``None``: none).
    criterion, selection, hyperparameter_uncertainty:
        ``"cv"`` or ``"in_sample"``; ``"consensus"`` or ``"best"`` (see above); whether the bootstrap
        redraws hyperparameters.
    prior_strength, hyperparameter_prior:
        Weight of the curve prior (0 turns it off) and overrides of its ``(centre, sd)`` pairs,
        keyed like :data:`DEFAULT_HYPERPARAMETER_PRIOR`.
    saturation_families:
        Saturation curve families the search may choose from (some of ``"hill"``, ``"exponential"``).
    decay_grid, half_grid, shape_grid, alpha_grid:
        Hyperparameter grids; ``half_grid`` is in multiples of the channel's average daily spend on
        the curve history's days with spend.
    max_passes:
        Coordinate-descent passes over the channels.
    widen_unbounded_levels:
        Whether channels whose spend is never low get ROAS and contribution intervals down to 0
        (see Intervals).
    robust, delay_grid:
        Whether to look for a level shift and outlier days first; adstock delays (whole days, with 0)
        the curve search may choose from (``(0,)``: geometric carryover only).
    curve_points, curve_max_multiple:
        Response-curve grid size and its end as a multiple of the current daily spend.
    lift_tests:
        Optional lift-test results (columns ``channel, start, end, roas, roas_se``; see
        :mod:`ml.mmm.calibration`): each is a Gaussian prior on the channel's ROAS over the test's days,
        in the curve search (a curve that contradicts the test loses weight), the coefficients and the
        bootstrap (which redraws the measurement from its standard error). A calibrated channel skips the
        review gate's checks on spend variation, floor and collinearity and keeps its bootstrap interval
        (no widening to 0). Bad tables raise ``ValueError`` naming the row and the column.
    level_prior_sd:
        Relative standard error of a shared-ROAS prior on the channels whose spend is never low (see
        :func:`_level_prior`), centred on the pooled ROAS of the channels whose spend does go low;
        ``None`` turns it off (the earlier default, variant ``no_level_prior``). 0.5 was chosen on the
        benchmark's choose seeds 100-105 (both window ends) over 0.3 (more accurate there but a lower rank
        correlation) and 1.0 (little effect); the report-seed figures are in docs/mmm_accuracy.md.
    level_prior_uncertainty:
        Whether the intervals also span the fit without the level prior (default on): the prior is an
        assumption, not a measurement, and it moves the other channels too (the regression shares the
        revenue out). Every interval of the channel table and the response curves is then the union of
        the interval with the prior and the one a fit with ``level_prior_sd=None`` gives (its own
        bootstrap, same seed), so it contains the answer without the prior; the point estimates and
        the response model's draws stay those with the prior. ``False`` is the earlier default (variant
        ``level_prior_only`` in docs/mmm_accuracy.md).
    coefficients_on, coefficient_uncertainty, level_prior_per_window:
        ``"curve_history"`` (default) or ``"window"``: the days the media coefficients are fitted on;
        whether every interval also spans the fit on the other days (default on; nothing to span when
        the curve history is the window); whether the level prior's rows are weighted up by
        ``sqrt(curve history days / window days)`` in a fit on the curve history, so that the prior
        keeps the weight against the data it was chosen with (default on; see Coefficients above).
    level_prior_centre_on_coefficients:
        With coefficients on the curve history, centre the level prior on the anchors' pooled window ROAS
        as the curve history's fit without the prior estimates them instead of the window's fit (default
        off: with ``level_prior_sd=0.3`` it gained on the choose seeds and lost on the report seeds;
        docs/mmm_accuracy.md).
    level_prior_shrink:
        ``None`` (default), ``"window"`` or ``"curve_history"``: centre each never-low channel's prior on
        an empirical-Bayes shrink between its own ROAS from the fit without the prior on those days and
        the anchors' pooled ROAS, weighted by the bootstrap variance of each (the pooled side's plus the
        prior's spread) instead of on the pooled ROAS alone. Tried and not adopted: the channels' own
        estimates are no closer to their truth than the pooled one (docs/mmm_accuracy.md).
    point_estimate:
        ``"fit"`` (default): each channel's coefficient is the published fit's. ``"bootstrap_median"``:
        bagging; each channel keeps its chosen curve, with the coefficient that gives it the median
        window contribution of the published fit's bootstrap draws (which redraw the curves too), so
        an estimate that a near-tied curve or a few days moved far is pulled back to what the draws
        agree on. No extra fits: the draws are the ones the intervals come from.
        ``"bootstrap_median_never_low"``: bagging only for the channels whose spend is never low (whose
        level the data cannot fix, so the draws' mixture of near-tied curves is the better summary), the
        single fit elsewhere. Both tried and not adopted: like a tighter level prior they move the
        never-low channels toward the pooled centre, one gaining what another loses (docs/mmm_accuracy.md).

    Returns
    -------
    MediaMixResult
        With ``review``: :func:`ml.mmm.review.review_channels` at its default thresholds, the
        per-channel verdict whether the data can identify the channel's effect.
    """
    _check_settings(
        criterion=criterion, selection=selection, prior_strength=prior_strength, lookback_days=lookback_days,
        min_days=min_days, n_bootstrap=n_bootstrap, ci=ci, cv_horizon_days=cv_horizon_days, block_days=block_days,
        curve_points=curve_points, curve_max_multiple=curve_max_multiple, decay_grid=decay_grid,
        half_grid=half_grid, shape_grid=shape_grid, alpha_grid=alpha_grid, max_passes=max_passes,
        yearly_fourier_order=yearly_fourier_order, delay_grid=delay_grid,
    )
    if point_estimate not in POINT_ESTIMATES:
        raise ValueError(f"point_estimate must be one of {list(POINT_ESTIMATES)}, got {point_estimate!r}")
    if coefficients_on not in ("curve_history", "window"):
        raise ValueError(f"coefficients_on must be 'curve_history' or 'window', got {coefficients_on!r}")
    families = tuple(saturation_families) if not isinstance(saturation_families, str) else (saturation_families,)
    if not families or len(set(families)) != len(families) or not set(families) <= set(SATURATION_FAMILIES):
        raise ValueError(
            f"saturation_families must be distinct names among {list(SATURATION_FAMILIES)}, got {list(families)}"
        )
    frame, names = _validated_history(daily, channels, lookback_days, min_days)
    tests = None
    if lift_tests is not None and len(lift_tests):
        tests = validate_lift_tests(lift_tests, channels=names, dates=pd.DatetimeIndex(frame["date"]))
    window = _model_window(
        frame, names, lookback_days=lookback_days, curve_history_days=curve_history_days, min_days=min_days,
        holidays=holidays, retail_peaks=retail_peaks, holiday_country=holiday_country,
        yearly_fourier_order=yearly_fourier_order,
    )

    candidates = _candidate_grid(decay_grid, delay_grid, half_grid, shape_grid, families)
    start = candidates[[_start_candidate(candidates)]]
    start_features = _candidate_features(window.spend, window.n_curve_days, start, window.saturation_scale)
    if robust:
        window = _robust_window(window, start_features[:, 0, :])
    calibration = None
    if tests is not None:
        # Daily noise the lift tests are weighed against, first from a fit at the search's start curve
        # (an overestimate: the start curves fit less well than the chosen ones), refined after the search.
        design = np.column_stack([window.curve_controls, start_features[:, 0, :].T])
        sigma = _robust_sd(_residuals(design, window.curve_revenue, window.curve_rows))
        calibration = _calibration(
            tests, names, pd.DatetimeIndex(frame["date"]), window.spend,
            lambda i: _candidate_features(
                window.spend[[i]], window.n_history_days, candidates, window.saturation_scale[[i]])[0],
            sigma,
        )
    curve_features = _candidate_features(window.spend, window.n_curve_days, candidates, window.saturation_scale)
    features = curve_features[:, :, -window.n_days:]  # (channels, candidates, window days)
    window_cv = _window_cross_validator(window, features, cv_horizon_days, calibration)
    penalty = prior_strength * _prior_penalty(candidates, hyperparameter_prior)
    curves = _choose_curves(
        window, curve_features, candidates, penalty, window_cv, criterion=criterion, selection=selection,
        alpha_grid=alpha_grid, max_passes=max_passes, cv_horizon_days=cv_horizon_days, calibration=calibration,
    )
    if calibration is not None:
        sigma = math.sqrt(curves.sse / max(len(window.curve_rows), 1))
        calibration = dataclasses.replace(calibration, weight=sigma / calibration.se)

    full = _Problem(features, window.revenue, window.controls, window.rows, calibration=calibration)
    fit = _fit(full, features, window.revenue, window.controls, curves.choice, curves.alpha)
    lift_calibration = calibration
    level_prior = None
    without_prior: tuple[_Problem, dict[str, Any]] | None = None
    # Bootstraps of fits without the level prior, by "days are the curve history", kept for the intervals.
    no_prior_fits: dict[bool, tuple[_Problem, dict[str, Any], tuple[np.ndarray, np.ndarray]]] = {}
    if level_prior_shrink not in (None, "window", "curve_history"):
        raise ValueError(f"level_prior_shrink must be None, 'window' or 'curve_history', got {level_prior_shrink!r}")
    if level_prior_sd is not None:
        sigma = math.sqrt(curves.sse / max(len(window.curve_rows), 1))
        centre_beta = fit["beta"]
        on_history = coefficients_on == "curve_history" and window.n_curve_days > window.n_days
        if level_prior_centre_on_coefficients and on_history:
            # Centred on the anchors as the curve history's fit without the prior estimates them (tried and
            # not adopted: docs/mmm_accuracy.md).
            problem = _Problem(curve_features, window.curve_revenue, window.curve_controls, window.curve_rows,
                               calibration=lift_calibration)
            centre_beta = _fit(problem, curve_features, window.curve_revenue, window.curve_controls,
                               curves.choice, curves.alpha)["beta"]
        own = None
        if level_prior_shrink is not None:
            shrink_history = level_prior_shrink == "curve_history" and window.n_curve_days > window.n_days
            if shrink_history:
                problem = _Problem(curve_features, window.curve_revenue, window.curve_controls, window.curve_rows,
                                   calibration=lift_calibration)
                own_fit = _fit(problem, curve_features, window.curve_revenue, window.curve_controls,
                               curves.choice, curves.alpha)
            else:
                problem, own_fit = full, fit
            own_draws = _block_bootstrap(
                problem, curve_features if shrink_history else features,
                window.curve_revenue if shrink_history else window.revenue, own_fit, curves.alpha, curves.choice,
                curves.errors if hyperparameter_uncertainty else None, curves.sse, penalty, n_bootstrap, block_days,
                np.random.default_rng(seed))
            no_prior_fits[shrink_history] = (problem, own_fit, own_draws)
            own = (own_fit["beta"], own_draws)
        level_prior = _level_prior(window, features, curves.choice, centre_beta, level_prior_sd, sigma,
                                   set() if tests is None else {names.index(c) for c in tests["channel"]},
                                   own=own)
        if level_prior is not None:
            without_prior = (full, fit)
            calibration = level_prior if calibration is None else _Calibration(*(
                np.concatenate([getattr(calibration, f), getattr(level_prior, f)])
                for f in ("channels", "per_unit", "roas", "se", "weight")))
            full = _Problem(features, window.revenue, window.controls, window.rows, calibration=calibration)
            fit = _fit(full, features, window.revenue, window.controls, curves.choice, curves.alpha)
    errors = curves.errors if hyperparameter_uncertainty else None

    def bootstrap(problem: _Problem, curve_fit: dict[str, Any], on_history: bool) -> tuple[np.ndarray, np.ndarray]:
        # Every fit's bootstrap starts from the same seed, so the fits differ by their data, not their draws.
        return _block_bootstrap(
            problem, curve_features if on_history else features, window.curve_revenue if on_history else window.revenue,
            curve_fit, curves.alpha, curves.choice, errors, curves.sse, penalty, n_bootstrap, block_days,
            np.random.default_rng(seed),
        )

    history_calibration = calibration
    if level_prior is not None and level_prior_per_window:
        # The level prior weighs against the curve history's days as it does against the window's: more days
        # of a spend that is never low add no information about its level, only about its slope.
        rows = slice(len(calibration.channels) - level_prior.n_rows, None)
        weight = calibration.weight.copy()
        weight[rows] *= math.sqrt(len(window.curve_rows) / max(len(window.rows), 1))
        history_calibration = dataclasses.replace(calibration, weight=weight)
    # The published fit and the alternative answers its intervals also span, each with its own bootstrap.
    has_history = window.n_curve_days > window.n_days
    on_history = coefficients_on == "curve_history" and has_history
    day_sets = [on_history] + ([not on_history] if coefficient_uncertainty and has_history else [])
    # The level prior is an assumption, not a measurement, and through the shared regression it moves every
    # channel: the intervals also span the fits without it (level_prior_uncertainty).
    prior_states = [True] + ([False] if without_prior is not None and level_prior_uncertainty else [])
    fits: list[tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]] = []
    for history_days in day_sets:
        for with_prior in prior_states:
            if history_days:
                # The chosen curves' coefficients fitted on the whole curve history (its controls, the same
                # lift tests and level prior): a channel's response is taken not to have changed over the
                # history (the curves already rest on that), and three times the days pin a coefficient down
                # where the window alone confounds a few flights with its baseline.
                if not with_prior and True in no_prior_fits:
                    problem, days_fit, draws = no_prior_fits[True]
                else:
                    problem = _Problem(curve_features, window.curve_revenue, window.curve_controls,
                                       window.curve_rows,
                                       calibration=history_calibration if with_prior else lift_calibration)
                    days_fit = _fit(problem, curve_features, window.curve_revenue, window.curve_controls,
                                    curves.choice, curves.alpha)
                    draws = bootstrap(problem, days_fit, True)
                # Its media and baseline over the window's days (the window is the curve history's end).
                days_fit = dict(days_fit, media=days_fit["media"][:, -window.n_days:],
                                baseline=days_fit["baseline"][-window.n_days:])
            else:
                if not with_prior and False in no_prior_fits:
                    problem, days_fit, draws = no_prior_fits[False]
                else:
                    problem, days_fit = (full, fit) if with_prior else without_prior
                    draws = bootstrap(problem, days_fit, False)
            fits.append((days_fit, draws))
    (fit, (beta_draws, draw_choices)), alternatives = fits[0], fits[1:]
    if point_estimate != "fit":
        bagged = _bagged_coefficients(features, curves.choice, fit["beta"], beta_draws, draw_choices)
        if point_estimate == "bootstrap_median_never_low":
            bagged = np.where(_never_low(window.spend_in_window), bagged, fit["beta"])
        fit = dict(fit, beta=bagged)

    # Left-out days keep their revenue: whatever media does not explain counts as baseline there.
    contributions = fit["beta"][:, None] * fit["media"]
    baseline = fit["baseline"].copy()
    baseline[window.excluded] = window.revenue[window.excluded] - contributions[:, window.excluded].sum(axis=0)

    model = _response_model(
        names, window, candidates, curves.choice, fit["beta"], beta_draws, draw_choices,
        baseline_daily=float(baseline[window.rows].mean()), ci=ci,
    )
    settings = {
        "n_bootstrap": n_bootstrap, "ci": ci, "block_days": block_days, "prior_strength": prior_strength,
        "criterion": criterion, "selection": selection, "hyperparameter_uncertainty": hyperparameter_uncertainty,
    }
    result = _result(
        window, model, features, curves, beta_draws, draw_choices, contributions, baseline, window_cv, settings,
        curve_points=curve_points, curve_max_multiple=curve_max_multiple,
    )
    for other_fit, (other_draws, other_choices) in alternatives:
        other_model = _response_model(
            names, window, candidates, curves.choice, other_fit["beta"], other_draws, other_choices,
            baseline_daily=model.baseline_daily, ci=ci,
        )
        other_channels, other_curves = _interval_tables(
            window, other_model, features, curves.choice, other_draws, other_choices,
            curve_points=curve_points, curve_max_multiple=curve_max_multiple, ci=ci)
        result = dataclasses.replace(
            result, channels=_span(result.channels, other_channels, "channel"),
            response_curves=_span(result.response_curves, other_curves, "channel"))
    for i, name in enumerate(names):
        result.diagnostics["hyperparameters"][name]["adstock_delay"] = int(candidates[curves.choice[i], 3])
        result.diagnostics["hyperparameters"][name]["saturation_family"] = model.responses[name].saturation_family
    outliers = window.outliers if window.outliers is not None else np.zeros(window.n_days, dtype=bool)
    result.diagnostics["n_holiday_days"] = int((window.excluded & ~outliers).sum())
    result.diagnostics["n_outlier_days"] = int(outliers.sum())
    result.diagnostics["outlier_dates"] = [d.date().isoformat() for d in window.dates[outliers]]
    result.diagnostics["level_shift_date"] = window.level_shift_date
    result.diagnostics["robust"] = bool(robust)
    result.diagnostics["level_prior_channels"] = (
        [] if level_prior is None else [names[i] for i in level_prior.channels])
    result.diagnostics["level_prior_roas"] = math.nan if level_prior is None else float(level_prior.roas[0])
    result.diagnostics["level_prior_uncertainty"] = bool(without_prior is not None and level_prior_uncertainty)
    result.diagnostics["coefficients_on"] = "curve_history" if on_history else "window"
    result.diagnostics["coefficient_uncertainty"] = bool(coefficient_uncertainty and window.n_curve_days > window.n_days)
    result.diagnostics["lift_test_channels"] = sorted(set(tests["channel"])) if tests is not None else []
    result.diagnostics["n_lift_tests"] = 0 if tests is None else len(tests)
    review = review_channels(result, frame)
    if widen_unbounded_levels:
        result = _widen_unbounded_levels(result, review)
    return dataclasses.replace(result, review=review)


def _never_low(spend: np.ndarray) -> np.ndarray:
    """Channels whose daily spend is never low: 10th percentile above the review gate's spend floor times
    the mean (the channels the level prior and the widened intervals are for)."""
    return (spend.mean(axis=1) > 0) & (spend_floor(spend) > ReviewThresholds().max_spend_floor)


def _bagged_coefficients(features: np.ndarray, choice: np.ndarray, beta: np.ndarray, beta_draws: np.ndarray,
                         draw_choices: np.ndarray) -> np.ndarray:
    """Per channel, the coefficient of its chosen curve whose window contribution is the median of the
    draws' window contributions (each draw at its own curve); ``beta`` where the chosen curve has none."""
    index = np.arange(features.shape[0])
    sums = features.sum(axis=2)  # (channels, candidates): each candidate's window total per unit coefficient
    median = np.median(beta_draws * sums[index, draw_choices], axis=0)
    chosen = sums[index, choice]
    return np.where(chosen > 0, median / np.where(chosen > 0, chosen, 1.0), beta)


def _widen_unbounded_levels(result: MediaMixResult, review: pd.DataFrame) -> MediaMixResult:
    """Intervals of contribution, share and ROAS opened to what the data allow for channels whose spend
    is never low: down to 0, and up to the estimate plus the baseline's constant part.

    Such a channel's data fix the slope of its response over the spend it ran at, not the level: how
    much revenue would vanish at zero spend is an extrapolation along the chosen curve family, and
    a concave curve fitted to the slope of an S-shaped one puts the level far too high (on the second
    benchmark family such channels were within 25% of the truth in under 20% of cases and often
    outside their own interval; docs/mmm_accuracy.md). Nothing in the data bounds the level from
    below, so the interval says so; the marginal ROAS, which the data do fix, keeps its interval.
    """
    floor = ReviewThresholds().max_spend_floor
    # A lift test measured the level the data cannot: its channel's interval comes from the test.
    unbounded = set(review.loc[review["spend_floor"] > floor, "channel"]).difference(
        result.diagnostics.get("lift_test_channels", []))
    if not unbounded:
        return result
    channels = result.channels.copy()
    rows = channels["channel"].isin(unbounded).to_numpy()
    for column in ("contribution_lower", "contribution_share_lower", "roas_lower"):
        channels.loc[rows, column] = np.fmin(channels.loc[rows, column], 0.0)
    # From above, the level trades off against the baseline's constant part: the channel could carry
    # what the baseline holds on every day (its 10th percentile, not below 0) on top of its estimate.
    # Without this, a channel the regression credited with nothing got the interval 0..0 (on the
    # second benchmark family, most of the major channels that were off by more than 50% with the
    # truth outside their interval; docs/mmm_accuracy.md).
    fitted = result.decomposition.loc[~result.decomposition["excluded"].astype(bool), "baseline"]
    absorbable = max(float(np.quantile(fitted, 0.10)), 0.0) * len(result.decomposition) if len(fitted) else 0.0
    contribution_cap = channels.loc[rows, "contribution"] + absorbable
    spend = channels.loc[rows, "spend"]
    channels.loc[rows, "contribution_upper"] = np.fmax(channels.loc[rows, "contribution_upper"], contribution_cap)
    channels.loc[rows, "roas_upper"] = np.fmax(
        channels.loc[rows, "roas_upper"], np.where(spend > 0, contribution_cap / spend.where(spend > 0, 1.0), np.nan))
    others = channels["contribution_lower"].clip(lower=0.0).sum() - channels.loc[rows, "contribution_lower"].clip(lower=0.0)
    channels.loc[rows, "contribution_share_upper"] = np.fmax(
        channels.loc[rows, "contribution_share_upper"],
        np.fmin(contribution_cap / (contribution_cap + others).where(contribution_cap + others > 0, 1.0), 1.0))
    result.diagnostics["unbounded_level_channels"] = sorted(unbounded)
    return dataclasses.replace(result, channels=channels)


def _level_prior(window: _Window, features: np.ndarray, choice: np.ndarray, beta: np.ndarray, relative_sd: float,
                 sigma: float, calibrated: set[int],
                 own: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None) -> _Calibration | None:
    """A shared-ROAS prior for the channels whose spend is never low: centred on the pooled window ROAS
    of the channels whose spend does go low (their level is seen in the data), with standard error
    ``relative_sd`` times it; ``None`` when no channel needs it or none can anchor it.

    Such a channel's data fix the slope of its response, not its level (the curve search finds curves
    that fit as well as the true ones and imply three times the true ROAS; docs/mmm_accuracy.md), so
    without outside information its ROAS is whatever the chosen curve family extrapolates. The prior
    says "paid media earns about what the rest of this advertiser's media earns" (Meridian and
    PyMC-Marketing put one ROI prior on every channel in the same spirit); its standard error is
    redrawn in every bootstrap draw like a lift test's.
    """
    spend = window.spend_in_window
    mean = spend.mean(axis=1)
    floor = spend_floor(spend)
    limit = ReviewThresholds().max_spend_floor
    never_low = [i for i in range(len(mean)) if mean[i] > 0 and floor[i] > limit and i not in calibrated]
    anchors = [i for i in range(len(mean)) if mean[i] > 0 and floor[i] <= limit]
    if not never_low or not anchors:
        return None
    idx = np.arange(len(mean))
    window_sums = features.sum(axis=2)  # (channels, candidates)
    contribution = beta * window_sums[idx, choice]
    pooled = float(contribution[anchors].sum() / spend[anchors].sum())
    if not pooled > 0:
        return None
    total = spend.sum(axis=1)
    se = np.full(len(never_low), relative_sd * pooled)
    centre = np.full(len(never_low), pooled)
    if own is not None:
        # Empirical Bayes: the channel's own no-prior ROAS (its bootstrap variance) against the pooled
        # anchors (their bootstrap variance plus the prior's spread of channels around them).
        own_beta, (draws, draw_choices) = own
        draw_sums = window_sums[idx[None, :], draw_choices]  # (draws, channels)
        draw_roas = draws * draw_sums / np.where(total > 0, total, 1.0)
        pooled_draws = (draws[:, anchors] * draw_sums[:, anchors]).sum(axis=1) / spend[anchors].sum()
        pool_var = float(np.var(pooled_draws)) + (relative_sd * pooled) ** 2
        for k, i in enumerate(never_low):
            own_roas = float(own_beta[i] * window_sums[i, choice[i]] / total[i])
            own_var = float(np.var(draw_roas[:, i]))
            if own_roas > 0 and own_var > 0:
                centre[k] = (own_roas / own_var + pooled / pool_var) / (1 / own_var + 1 / pool_var)
    return _Calibration(
        channels=np.array(never_low, dtype=int), per_unit=window_sums[never_low] / total[never_low, None],
        roas=centre, se=se, weight=sigma / se,
    )


def _start_candidate(candidates: np.ndarray) -> int:
    """The candidate the curve search starts from (decay 0.3, half 1x, shape 1, no delay)."""
    return int(np.argmin(
        np.abs(candidates[:, 0] - 0.3) + np.abs(np.log(candidates[:, 1])) + np.abs(candidates[:, 2] - 1.0)
        + np.abs(candidates[:, 3]) + np.abs(candidates[:, 4])
    ))


def _window_cross_validator(window: _Window, features: np.ndarray, cv_horizon_days: int,
                            calibration: _Calibration | None = None) -> _CrossValidator:
    """Expanding-window cross-validation over the window's fitted days, or a ``ValueError`` if too short."""
    n_channels = features.shape[0]
    n_parameters = window.controls.shape[1] + n_channels
    folds = _expanding_folds(window.rows, window.n_days, cv_horizon_days, n_parameters)
    if not folds:
        raise ValueError(
            f"{len(window.rows)} fitted days are too few for {n_channels} channels plus {window.controls.shape[1]} "
            f"controls ({n_parameters} coefficients) and a {cv_horizon_days}-day validation block; "
            "use a longer lookback_days, fewer channels (merge small ones) or a shorter cv_horizon_days"
        )
    return _CrossValidator(features, window.revenue, window.controls, folds, calibration)


def _response_model(
    names: tuple[str, ...],
    window: _Window,
    candidates: np.ndarray,
    choice: np.ndarray,
    beta: np.ndarray,
    beta_draws: np.ndarray,
    draw_choices: np.ndarray,
    *,
    baseline_daily: float,
    ci: float,
) -> ResponseModel:
    """Every channel's steady-state curve at its chosen candidate, with the bootstrap's draws."""
    scale = window.saturation_scale
    current = window.current_daily_spend
    return ResponseModel(
        responses={
            name: ChannelResponse(
                channel=name,
                coefficient=float(beta[i]),
                adstock_decay=float(candidates[choice[i], 0]),
                saturation_half=float(candidates[choice[i], 1] * scale[i]),
                saturation_shape=float(candidates[choice[i], 2]),
                saturation_family=SATURATION_FAMILIES[int(candidates[choice[i], 4])],
                current_daily_spend=float(current[i]),
                coefficient_draws=beta_draws[:, i].copy(),
                half_draws=candidates[draw_choices[:, i], 1] * scale[i],
                shape_draws=candidates[draw_choices[:, i], 2].copy(),
                decay_draws=candidates[draw_choices[:, i], 0].copy(),
                family_draws=np.array(SATURATION_FAMILIES, dtype=object)[candidates[draw_choices[:, i], 4].astype(int)],
            )
            for i, name in enumerate(names)
        },
        baseline_daily=baseline_daily,
        ci=float(ci),
    )


def _result(
    window: _Window,
    model: ResponseModel,
    features: np.ndarray,
    curves: _CurveChoice,
    beta_draws: np.ndarray,
    draw_choices: np.ndarray,
    contributions: np.ndarray,
    baseline: np.ndarray,
    window_cv: _CrossValidator,
    settings: Mapping[str, Any],
    *,
    curve_points: int,
    curve_max_multiple: float,
) -> MediaMixResult:
    """The published tables, with intervals at the coverage in ``settings["ci"]``, around ``model``."""
    names = model.channel_names
    channels, response_curves = _interval_tables(
        window, model, features, curves.choice, beta_draws, draw_choices,
        curve_points=curve_points, curve_max_multiple=curve_max_multiple, ci=settings["ci"])
    decomposition = _decomposition(window, names, contributions, baseline)
    return MediaMixResult(
        channels=channels,
        diagnostics=_diagnostics(window, model, decomposition, contributions, window_cv, curves, settings),
        response_curves=response_curves,
        decomposition=decomposition,
        response_model=model,
    )


def _interval_tables(
    window: _Window,
    model: ResponseModel,
    features: np.ndarray,
    choice: np.ndarray,
    beta_draws: np.ndarray,
    draw_choices: np.ndarray,
    *,
    curve_points: int,
    curve_max_multiple: float,
    ci: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The channel table and the response curves of ``model`` with intervals at coverage ``ci``."""
    names = model.channel_names
    lo_q, hi_q = (1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0
    channel_index = np.arange(len(names))
    feature_sums = features.sum(axis=2)
    draw_contributions = beta_draws * feature_sums[channel_index, draw_choices]  # (draws, channels)
    beta = np.array([r.coefficient for r in model.responses.values()])
    channels = _channel_table(
        names, window.spend_in_window, feature_sums[channel_index, choice], beta, draw_contributions,
        model.responses, lo_q, hi_q,
    )
    return channels, _response_curves(model.responses, curve_points, curve_max_multiple, lo_q, hi_q)


def _span(table: pd.DataFrame, other: pd.DataFrame, key: str) -> pd.DataFrame:
    """``table`` with every ``<measure>_lower`` / ``_upper`` pair widened to cover ``other``'s interval and
    its estimate (same rows in the same order, matched on ``key``)."""
    if not table[key].reset_index(drop=True).equals(other[key].reset_index(drop=True)):
        raise ValueError(f"_span: the two tables list different {key} rows")
    table = table.copy()
    for column in table.columns:
        if column.endswith("_lower") and column[:-6] + "_upper" in table.columns:
            measure = column[:-6]
            lower = np.fmin(other[column].to_numpy(), other[measure].to_numpy())
            upper = np.fmax(other[measure + "_upper"].to_numpy(), other[measure].to_numpy())
            table[column] = np.fmin(table[column].to_numpy(), lower)
            table[measure + "_upper"] = np.fmax(table[measure + "_upper"].to_numpy(), upper)
    return table
