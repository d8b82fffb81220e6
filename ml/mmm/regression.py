"""The regression under the media-mix model: controls projected out, a non-negative ridge on the
media columns, and the expanding-window cross-validation that scores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls


@dataclass(frozen=True)
class _Calibration:
    """Lift-test results as pseudo-observations of the media coefficients (a Gaussian prior on ROAS).

    Row ``j`` says that channel ``channels[j]``'s ROAS over the test's days, ``beta * per_unit[j, k]``
    for curve candidate ``k`` (``per_unit``: the candidate's feature summed over the test days per unit
    of the spend made in them), was measured as ``roas[j]`` with standard error ``se[j]``. In the
    least-squares objective it adds ``sigma^2 * ((beta * per_unit - roas) / se)^2``: with ``sigma`` the
    daily noise, the objective is then ``sigma^2`` times the negative log posterior of the coefficients
    under the Gaussian likelihood and this prior. ``weight = sigma / se`` scales the rows.
    """

    channels: np.ndarray  # (rows,) channel index
    per_unit: np.ndarray  # (rows, candidates)
    roas: np.ndarray  # (rows,)
    se: np.ndarray  # (rows,)
    weight: np.ndarray  # (rows,) sigma / se

    @property
    def n_rows(self) -> int:
        return len(self.channels)

    def targets(self, noise: np.ndarray | None = None) -> np.ndarray:
        """Pseudo-targets ``weight * roas``; with ``noise`` (..., rows) of standard normals, one bootstrap
        draw of the measurement, ``weight * (roas + se * noise)``."""
        roas = self.roas if noise is None else self.roas + self.se * noise
        return self.weight * roas


def _expanding_folds(rows: np.ndarray, n: int, horizon: int, n_parameters: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the window's fitted ``rows``: ``(train_rows, test_rows)`` pairs.

    Test blocks of ``horizon`` calendar days tile the second half of the window (less when the
    first training set would be too small for the parameter count); each fold trains on every
    fitted day before its block, so no fold sees revenue after the days it predicts.
    """
    first = min(max(n // 2, n_parameters + 14), n - 1)
    n_folds = max(1, (n - first) // horizon)
    bounds = np.linspace(n - n_folds * horizon, n, n_folds + 1).round().astype(int)
    folds = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        train, test = rows[rows < start], rows[(rows >= start) & (rows < end)]
        if len(test) and len(train) > n_parameters:
            folds.append((train, test))
    return folds


def _column_scale(z: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
    """Root mean square of each row; 1 for (numerically) all-zero rows so they stay zero.

    With ``raw`` (the rows before the controls were projected out), an all-zero row takes the root
    mean square of its raw row instead: a channel whose spend never changes has no column left after
    the intercept, but a lift test can still fix its coefficient, and the ridge must see it on the
    scale of the others (with 1 it would be on the scale of daily revenue and held at 0).
    """
    rms = np.sqrt(np.mean(z * z, axis=-1))
    live = rms > 1e-9 * (1.0 + np.sqrt(np.mean(np.square(z))))
    fallback = 1.0
    if raw is not None:
        raw_rms = np.sqrt(np.mean(raw * raw, axis=-1))
        fallback = np.where(raw_rms > 0, raw_rms, 1.0)
    return np.where(live, rms, fallback)


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched ``min b'Gb/2 - r'b`` subject to ``b >= 0`` for many small positive-definite systems.

    Active-set iteration on all systems at once (solve on the free set, drop the most negative
    coefficient, repeat); any system whose result fails the KKT conditions is re-solved exactly with
    ``scipy.optimize.nnls`` on its Cholesky factor, so the result is always the exact optimum.
    """
    m, k = rhs.shape
    eye = np.eye(k)
    free = np.ones((m, k), dtype=bool)
    coef = np.zeros((m, k))
    for _ in range(k + 1):
        mask = free[:, :, None] & free[:, None, :]
        coef = np.linalg.solve(np.where(mask, gram, eye), np.where(free, rhs, 0.0)[..., None])[..., 0]
        negative = free & (coef < 0)
        rows = np.flatnonzero(negative.any(axis=1))
        if rows.size == 0:
            break
        drop = np.argmin(np.where(negative[rows], coef[rows], np.inf), axis=1)
        free[rows, drop] = False
    coef = np.where(free, coef, 0.0)
    gradient = np.einsum("mij,mj->mi", gram, coef) - rhs
    tol = 1e-9 * (np.abs(rhs).max(axis=1, keepdims=True) + np.abs(gram).max(axis=(1, 2))[:, None])
    bad = np.flatnonzero(((~free) & (gradient < -tol)).any(axis=1) | (coef < 0).any(axis=1))
    for i in bad:
        factor = np.linalg.cholesky(gram[i])
        coef[i], _ = nnls(factor.T, np.linalg.solve(factor, rhs[i]), maxiter=50 * k)
    return coef


class _Problem:
    """The regression on a set of training days, media candidates with the controls projected out.

    Controls are unpenalized and unsigned, so they are removed exactly by projection
    (Frisch-Waugh-Lovell) and only the media coefficients go through the non-negative ridge.
    Media columns are scaled to unit root-mean-square after projection so one ridge strength
    fits all channels. Test days, if any, are adjusted with the control coefficients learnt on the
    training days only.
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
                 train: np.ndarray, test: np.ndarray | None = None, calibration: _Calibration | None = None):
        self.features = features
        self.train, self.test = train, (test if test is not None else train[:0])
        self.c_train, self.c_test = controls[self.train], controls[self.test]
        self.pinv = np.linalg.pinv(self.c_train)
        y_coef = self.pinv @ y[self.train]
        self.y_train = y[self.train] - self.c_train @ y_coef
        self.y_test = y[self.test] - self.c_test @ y_coef
        self.n_channels = features.shape[0]
        self.n_data = len(self.train)
        # Lift tests are extra training rows after the days (no control columns, so projecting the
        # controls out of the days alone stays exact); y_train ends with their targets.
        self.calibration = calibration if calibration is not None and calibration.n_rows else None
        # The ridge (a prior centred on 0 for collinear columns) applies to uncalibrated channels only: a
        # calibrated channel's prior is its lift test, which the ridge would otherwise fight (a channel
        # with flat spend has no data column, and the ridge alone would hold it near 0).
        self.ridge_weight = np.ones(self.n_channels)
        if self.calibration is not None:
            self.y_train = np.concatenate([self.y_train, self.calibration.targets()])
            self.ridge_weight[np.unique(self.calibration.channels)] = 0.0

    def _pseudo_rows(self, channel: int, ks: Any, scale: np.ndarray) -> np.ndarray:
        """Lift-test rows (..., rows) of the scaled column(s) of ``channel``'s candidates ``ks``."""
        cal = self.calibration
        per_unit = cal.per_unit[:, ks] if np.ndim(ks) or isinstance(ks, slice) else cal.per_unit[:, [ks]]
        rows = np.where((cal.channels == channel)[:, None], cal.weight[:, None] * per_unit, 0.0)  # (rows, ks)
        rows = rows.T / np.reshape(scale, (-1, 1))
        return rows.reshape(*np.shape(scale), cal.n_rows)

    def columns(self, channel: int, ks: Any = slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled training columns, scaled test columns and scales of candidates ``ks`` of ``channel``."""
        raw = self.features[channel, ks]
        raw_train = raw[..., self.train]
        coef = raw_train @ self.pinv.T
        train = raw_train - coef @ self.c_train.T
        scale = _column_scale(train, raw_train if self.calibration is not None else None)
        test = raw[..., self.test] - coef @ self.c_test.T
        train = train / scale[..., None]
        if self.calibration is not None:
            train = np.concatenate([train, self._pseudo_rows(channel, ks, scale)], axis=-1)
        return train, test / scale[..., None], scale

    def design(self, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training matrix (days, channels), test matrix and column scales for one candidate per channel."""
        idx = np.arange(self.n_channels)
        raw = self.features[idx, choice]  # (channels, days)
        raw_train = raw[:, self.train]
        coef = raw_train @ self.pinv.T
        train = raw_train - coef @ self.c_train.T
        scale = _column_scale(train, raw_train if self.calibration is not None else None)
        test = raw[:, self.test] - coef @ self.c_test.T
        train = train / scale[:, None]
        if self.calibration is not None:
            cal = self.calibration
            pseudo = np.zeros((self.n_channels, cal.n_rows))
            for j, c in enumerate(cal.channels):
                pseudo[c, j] = cal.weight[j] * cal.per_unit[j, choice[c]] / scale[c]
            train = np.concatenate([train, pseudo], axis=1)
        return train.T, (test / scale[:, None]).T, scale

    def solve(self, z: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
        """Non-negative ridge on scaled columns: min |z b - t|^2 + alpha * days * |b|^2, b >= 0."""
        k = z.shape[1]
        a = np.vstack([z, np.diag(np.sqrt(alpha * self.n_data * self.ridge_weight))])
        coef, _ = nnls(a, np.concatenate([target, np.zeros(k)]), maxiter=50 * k)
        return coef

    def calibration_errors(self, choice: np.ndarray, channel: int, coef: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Squared misfit ``(candidates, lift rows)`` of the lift-test rows, for the scaled coefficients
        ``coef`` (candidates, channels) and candidate ``scale`` of :meth:`channel_candidates`: a lift
        test's misfit counts in a candidate's score like a day's error, so curves that contradict the
        test lose weight."""
        cal = self.calibration
        z, _, _ = self.design(choice)
        pseudo = z[self.n_data:]  # (rows, channels) at the current choice
        own = self._pseudo_rows(channel, slice(None), scale)  # (candidates, rows)
        others = pseudo.copy()
        others[:, channel] = 0.0
        pred = coef @ others.T + coef[:, channel:channel + 1] * own
        return np.square(cal.targets()[None, :] - pred)

    def channel_candidates(self, choice: np.ndarray, alpha: float, channel: int) -> tuple[np.ndarray, ...]:
        """Scaled coefficients for every candidate of ``channel``, the others held at ``choice``.

        Returns ``(coef (candidates, channels), candidate test columns, test matrix, candidate scales)``.
        """
        z, t, _ = self.design(choice)
        zc, tc, scale = self.columns(channel)
        k = z.shape[1]
        rows = self.n_data
        ridge = alpha * rows * self.ridge_weight + 1e-10 * rows  # the tiny jitter keeps all-zero columns solvable
        gram = z.T @ z + np.diag(ridge)
        cross = zc @ z
        grams = np.broadcast_to(gram, (len(zc), k, k)).copy()
        grams[:, channel, :] = cross
        grams[:, :, channel] = cross
        grams[:, channel, channel] = np.einsum("ij,ij->i", zc, zc) + ridge[channel]
        rhs = np.broadcast_to(z.T @ self.y_train, (len(zc), k)).copy()
        rhs[:, channel] = zc @ self.y_train
        return _nnls_gram(grams, rhs), tc, t, scale


class _CrossValidator:
    """Pooled squared error of the non-negative ridge over folds: expanding-window CV, or one
    in-sample "fold" whose test days are its training days (the profile least-squares criterion).
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], calibration: _Calibration | None = None):
        self.problems = [_Problem(features, y, controls, train, test, calibration) for train, test in folds]
        self.n_channels, self.n_candidates, _ = features.shape
        # Scored "days": the test days, and each fold's lift-test rows (see _Problem.calibration_errors).
        self.n_test = sum(len(p.test) + (p.calibration.n_rows if p.calibration is not None else 0)
                          for p in self.problems)

    def sse(self, choice: np.ndarray, alpha: float) -> float:
        total = 0.0
        for p in self.problems:
            z, t, _ = p.design(choice)
            resid = p.y_test - t @ p.solve(z, p.y_train, alpha)
            total += float(resid @ resid)
        return total

    def channel_errors(self, choice: np.ndarray, alpha: float, channel: int) -> np.ndarray:
        """Squared test errors ``(candidates, test days)`` of each candidate of ``channel``, others at ``choice``."""
        parts = []
        for p in self.problems:
            coef, tc, t, scale = p.channel_candidates(choice, alpha, channel)
            others = t.copy()
            others[:, channel] = 0.0
            pred = coef @ others.T + coef[:, channel:channel + 1] * tc
            parts.append(np.square(p.y_test - pred))
            if p.calibration is not None:
                parts.append(p.calibration_errors(choice, channel, coef, scale))
        return np.concatenate(parts, axis=1)


def _fit(full: _Problem, features: np.ndarray, y: np.ndarray, controls: np.ndarray,
         choice: np.ndarray, alpha: float) -> dict[str, Any]:
    """The final fit on the window: media coefficients in revenue per unit of feature, the chosen
    media features, the baseline (controls refitted on what media leaves) and the fitted revenue."""
    z, _, scale = full.design(choice)
    beta = full.solve(z, full.y_train, alpha) / scale
    media = features[np.arange(full.n_channels), choice]  # (channels, window days)
    gamma = full.pinv @ (y[full.train] - beta @ media[:, full.train])
    baseline = controls @ gamma
    return {"beta": beta, "media": media, "baseline": baseline, "fitted": baseline + beta @ media}

