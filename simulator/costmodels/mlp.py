"""Two small regressors in plain numpy: a multilayer perceptron and ridge regression.

Both take an already standardised design matrix and target and return their parameters as a dict
of numpy arrays, so a model file can store them as lists. Every random choice (initial weights,
minibatch order) comes from one ``numpy.random.Generator`` seeded by the caller: the same data and
seed give the same weights.

MLP: fully connected ReLU layers and a linear output, He initialisation (He et al., "Delving Deep
into Rectifiers", ICCV 2015), mean-squared error plus an L2 penalty, Adam (Kingma and Ba, ICLR
2015, Algorithm 1, default betas) on shuffled minibatches, with the learning rate on a half-cosine
from its initial value to zero over the epochs (Loshchilov and Hutter, "SGDR", ICLR 2017, without
restarts).

Ridge: the closed form w = (XᵀX + α·n·I)⁻¹ Xᵀy on X with a column of ones (the intercept is not
penalised).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from simulator.errors import SpecError, UnknownNameError

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def fit_mlp(x: np.ndarray, y: np.ndarray, *, seed: int, hidden: tuple[int, ...] = (64, 64),
            epochs: int = 200, learning_rate: float = 2e-3, batch_size: int = 64,
            l2: float = 1e-5) -> dict[str, list[np.ndarray]]:
    """Train an MLP ``x -> y`` (standardised inputs and target); returns weights and biases."""
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or l2 < 0 or not hidden \
            or min(hidden) < 1:
        raise SpecError("bad MLP settings: epochs, batch_size and hidden sizes must be >= 1, "
                        "learning_rate > 0, l2 >= 0", field="hyperparameters",
                        value={"hidden": hidden, "epochs": epochs, "batch_size": batch_size,
                               "learning_rate": learning_rate, "l2": l2})
    rng = np.random.default_rng(seed)
    sizes = [x.shape[1], *hidden, 1]
    weights = [rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(fan_out) for fan_out in sizes[1:]]
    params = weights + biases
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    n, depth, step = len(y), len(weights), 0
    target = y.reshape(-1, 1)
    for epoch in range(epochs):
        rate = learning_rate * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            acts = [x[rows]]
            for j in range(depth):
                z = acts[-1] @ weights[j] + biases[j]
                acts.append(np.maximum(z, 0.0) if j < depth - 1 else z)
            grad = (acts[-1] - target[rows]) * (2.0 / len(rows))
            grads_w: list[np.ndarray] = [None] * depth  # type: ignore[list-item]
            grads_b: list[np.ndarray] = [None] * depth  # type: ignore[list-item]
            for j in reversed(range(depth)):
                grads_w[j] = acts[j].T @ grad + l2 * weights[j]
                grads_b[j] = grad.sum(axis=0)
                if j:
                    grad = (grad @ weights[j].T) * (acts[j] > 0.0)
            step += 1
            corr1, corr2 = 1.0 - _BETA1 ** step, 1.0 - _BETA2 ** step
            for p, g, m, v in zip(params, grads_w + grads_b, first, second):
                m *= _BETA1
                m += (1.0 - _BETA1) * g
                v *= _BETA2
                v += (1.0 - _BETA2) * g * g
                p -= rate * (m / corr1) / (np.sqrt(v / corr2) + _EPS)
    return {"weights": weights, "biases": biases}


def predict_mlp(params: dict[str, list[np.ndarray]], x: np.ndarray) -> np.ndarray:
    h = x
    depth = len(params["weights"])
    for j, (w, b) in enumerate(zip(params["weights"], params["biases"])):
        h = h @ w + b
        if j < depth - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0]


def fit_ridge(x: np.ndarray, y: np.ndarray, *, seed: int = 0,
              alpha: float = 1e-3) -> dict[str, np.ndarray]:
    """Ridge regression in closed form (``seed`` is accepted for a uniform interface)."""
    if alpha < 0:
        raise SpecError("ridge alpha must be >= 0", field="alpha", value=alpha)
    a = np.column_stack([np.ones(len(x)), x])
    penalty = alpha * len(x) * np.eye(a.shape[1])
    penalty[0, 0] = 0.0
    coef = np.linalg.solve(a.T @ a + penalty, a.T @ y)
    return {"intercept": np.array([coef[0]]), "coef": coef[1:]}


def predict_ridge(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return x @ params["coef"] + params["intercept"][0]


#: name -> (fit, predict); ``fit(x, y, *, seed, **settings)``.
ESTIMATORS: dict[str, tuple[Callable, Callable]] = {
    "mlp": (fit_mlp, predict_mlp),
    "ridge": (fit_ridge, predict_ridge),
}


def estimator(name: str) -> tuple[Callable, Callable]:
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise UnknownNameError("estimator", name, list(ESTIMATORS)) from None


def params_to_json(params: dict) -> dict:
    """Arrays (or lists of arrays) as nested lists of Python floats (exact round trip)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, list):
            out[key] = [np.asarray(v).tolist() for v in value]
        else:
            out[key] = np.asarray(value).tolist()
    return out


def params_from_json(name: str, doc: dict) -> dict:
    """The inverse of :func:`params_to_json` for estimator ``name``."""
    if name == "mlp":
        weights = [np.asarray(w, dtype=float) for w in doc["weights"]]
        biases = [np.asarray(b, dtype=float) for b in doc["biases"]]
        if len(weights) != len(biases) or not weights:
            raise ValueError("weights and biases must be non-empty lists of the same length")
        for w, b in zip(weights, biases):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise ValueError("layer shapes do not chain")
        for w_in, w_out in zip(weights[:-1], weights[1:]):
            if w_in.shape[1] != w_out.shape[0]:
                raise ValueError("layer shapes do not chain")
        return {"weights": weights, "biases": biases}
    if name == "ridge":
        return {"intercept": np.asarray(doc["intercept"], dtype=float).reshape(1),
                "coef": np.asarray(doc["coef"], dtype=float)}
    raise UnknownNameError("estimator", name, list(ESTIMATORS))
