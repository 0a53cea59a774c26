"""How an ensemble's member probabilities become one prediction, as data: the combiner.

    mean      the members' class probabilities averaged (every run before this option)
    weighted  a weighted average: `weights` (M, non-negative, summing to 1), as greedy ensemble
              selection with replacement gives them (training/ensembles.py `caruana`)
    stack  a stacked combiner: multinomial logistic regression on the members' log-probabilities,
           softmax(W · [log p_1, …, log p_M] + b), W (C, M·C), b (C,)

The stacker is fitted (`fit_stacker`) with an L2 penalty that pulls W towards the equal-weight
log-linear pool (each member's own-class log-probability weighted 1/M, b = 0), so a strongly
regularised stacker is the geometric mean of the members; the loss is class-balanced (each class
weighs the same, as UA does). Deterministic: float64, L-BFGS from that starting point, a fixed
iteration cap. `Combiner.apply` is the one NumPy function both recognizer backends and the run's
summary use. Torch-free; `Combiner.from_dict` validates model.json's `combiner` as data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emotionnas.errors import ConfigError

KINDS = ("mean", "weighted", "stack")
EPS = 1e-6              # log-probabilities are clipped at log(EPS): bounded inputs
STACK_L2 = 0.01         # penalty on ||W - W_pool||^2 / 2 per (class-weighted) mean NLL; a priori
STACK_ITERS = 200       # L-BFGS iteration cap
MAX_COEFS = 1_000_000   # W entries accepted from a model.json
MAX_ABS = 1e4           # |coefficient| accepted from a model.json


def log_features(member_probs) -> np.ndarray:
    """(M, N, C) member probabilities -> (N, M·C) clipped log-probabilities, member-major."""
    p = np.asarray(member_probs, np.float64)
    m, n, c = p.shape
    return np.log(np.clip(p, EPS, 1.0)).transpose(1, 0, 2).reshape(n, m * c)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Combiner:
    kind: str = "mean"
    coef: tuple = ()        # stack: C rows of M·C numbers
    intercept: tuple = ()   # stack: C numbers
    weights: tuple = ()     # weighted: M numbers >= 0 summing to 1

    def apply(self, member_probs) -> np.ndarray:
        """(M, N, C) member probabilities (a list of (N, C) arrays too) -> (N, C)."""
        if self.kind == "mean":
            return np.mean(member_probs, axis=0)
        if self.kind == "weighted":
            return np.tensordot(np.asarray(self.weights, np.float64), np.asarray(member_probs, np.float64),
                                axes=1).astype(np.asarray(member_probs[0]).dtype)
        z = log_features(member_probs) @ np.asarray(self.coef, np.float64).T + np.asarray(self.intercept, np.float64)
        return _softmax(z)

    def to_dict(self) -> dict:
        if self.kind == "mean":
            return {"kind": "mean"}
        if self.kind == "weighted":
            return {"kind": "weighted", "weights": list(self.weights)}
        return {"kind": self.kind, "coef": [list(r) for r in self.coef], "intercept": list(self.intercept)}

    @classmethod
    def from_dict(cls, d, n_members: int, n_classes: int, where: str = "combiner") -> "Combiner":
        """Validated: kind, and for a stacker a finite (C, M·C) matrix and C intercepts."""
        if d is None:
            return cls()
        if not isinstance(d, dict) or d.get("kind") not in KINDS:
            raise ConfigError(f"{where}.kind: expected one of {KINDS}")
        if d["kind"] == "mean":
            if set(d) != {"kind"}:
                raise ConfigError(f"{where}: a mean combiner has no other fields")
            return cls()
        if d["kind"] == "weighted":
            return cls.weighted(d.get("weights") if set(d) == {"kind", "weights"} else None, n_members, where)
        if set(d) != {"kind", "coef", "intercept"}:
            raise ConfigError(f"{where}: expected the fields kind, coef, intercept")
        width = n_members * n_classes
        if n_classes * width > MAX_COEFS:
            raise ConfigError(f"{where}.coef: {n_classes} x {width} coefficients > limit {MAX_COEFS}")
        coef, intercept = d["coef"], d["intercept"]
        if not isinstance(coef, list) or len(coef) != n_classes or not all(
                isinstance(r, list) and len(r) == width for r in coef):
            raise ConfigError(f"{where}.coef: expected {n_classes} rows of {width} numbers (classes x members·classes)")
        if not isinstance(intercept, list) or len(intercept) != n_classes:
            raise ConfigError(f"{where}.intercept: expected {n_classes} numbers")
        for x in (v for r in coef + [intercept] for v in r):
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or abs(x) > MAX_ABS:
                raise ConfigError(f"{where}: expected finite numbers within ±{MAX_ABS:g}, got {repr(x)[:40]}")
        return cls("stack", tuple(tuple(float(v) for v in r) for r in coef), tuple(float(v) for v in intercept))

    @classmethod
    def weighted(cls, weights, n_members: int, where: str = "combiner") -> "Combiner":
        """A weighted average of `n_members` members; weights validated (finite, >= 0, not all 0)
        and normalised to sum to 1."""
        if (not isinstance(weights, (list, tuple)) or len(weights) != n_members
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                           and 0 <= w <= MAX_ABS for w in weights) or sum(weights) <= 0):
            raise ConfigError(f"{where}.weights: expected {n_members} finite numbers >= 0, not all 0")
        total = float(sum(weights))
        return cls("weighted", weights=tuple(round(float(w) / total, 6) for w in weights))


def pool_start(n_members: int, n_classes: int) -> np.ndarray:
    """W of the equal-weight log-linear pool: each member's class-c log-prob weighted 1/M for class c."""
    return np.tile(np.eye(n_classes), (1, n_members)) / n_members


def fit_stacker(member_probs, y, n_classes: int, l2: float = STACK_L2, iters: int = STACK_ITERS) -> Combiner:
    """The stacked combiner on (M, N, C) member probabilities with labels `y` (N,)."""
    from scipy.optimize import minimize
    x = log_features(member_probs)
    y = np.asarray(y, int)
    n, d = x.shape
    m = d // n_classes
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = (1.0 / (np.count_nonzero(counts) * np.maximum(counts, 1)))[y]  # classes weigh the same; sums to 1
    onehot = np.eye(n_classes)[y]
    w0 = pool_start(m, n_classes)

    def loss(theta):
        W, b = theta[: n_classes * d].reshape(n_classes, d), theta[n_classes * d:]
        z = x @ W.T + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        diff = W - w0
        value = -(w * (onehot * logp).sum(axis=1)).sum() + 0.5 * l2 * (diff ** 2).sum()
        g = (np.exp(logp) - onehot) * w[:, None]
        grad_w = g.T @ x + l2 * diff
        return value, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    theta0 = np.concatenate([w0.ravel(), np.zeros(n_classes)])
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": iters})
    W, b = res.x[: n_classes * d].reshape(n_classes, d), res.x[n_classes * d:]
    W, b = np.clip(W, -MAX_ABS, MAX_ABS), np.clip(b, -MAX_ABS, MAX_ABS)
    return Combiner("stack", tuple(tuple(round(float(v), 8) for v in r) for r in W),
                    tuple(round(float(v), 8) for v in b))
