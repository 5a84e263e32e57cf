"""Parameter update rules of the book's chapter 6, with the book's defaults.

``update(params, grads)`` changes every array of ``params`` in place (layers
hold references to them) and keeps its dtype; ``grads`` is left alone.
State (velocities, squared-gradient sums, moments) is created lazily per
parameter name, in the parameter's dtype.

``state_dict()`` / ``load_state_dict(d)`` save and restore an optimizer for
resuming training: ``{"name": str, "hyperparams": {str: float}, "iter": int,
"slots": {slot: {param_name: ndarray}}}`` (hyperparameters are JSON-able,
slot arrays are copies).
"""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np

from . import ops

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer"]

Params = Dict[str, np.ndarray]


class Optimizer:
    """Base class: hyperparameters, named state slots and their (de)serialisation."""

    name = ""
    _slots: tuple[str, ...] = ()

    def __init__(self, **hyperparams: float) -> None:
        for key, value in hyperparams.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ValueError(f"{type(self).__name__}: {key} must be a finite number, got {value!r}")
        if hyperparams.get("lr", 1) <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {hyperparams['lr']!r}")
        self._check(hyperparams)
        self._hyper = tuple(hyperparams)
        for key, value in hyperparams.items():
            setattr(self, key, float(value))
        self.iter = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self._slots}

    @classmethod
    def _check(cls, hyperparams: dict) -> None:
        """Raise ValueError for hyperparameters outside their range (all are finite numbers here)."""

    def _slot(self, slot: str, key: str, like: np.ndarray) -> np.ndarray:
        """State array ``slot`` for parameter ``key`` (zeros of the parameter's shape and dtype)."""
        arr = self.slots[slot].get(key)
        if arr is None or arr.shape != like.shape or arr.dtype != like.dtype:
            arr = np.zeros_like(like) if arr is None else np.asarray(arr, dtype=like.dtype)
            if arr.shape != like.shape:
                raise ValueError(f"{self.name} state {slot}[{key!r}] has shape {arr.shape}, "
                                 f"parameter has {like.shape}")
            self.slots[slot][key] = arr
        return arr

    def update(self, params: Params, grads: Params) -> None:
        """One step on every array of ``params`` (in place) from ``grads`` (same keys)."""
        self.iter += 1
        for key, p in params.items():
            g = np.asarray(grads[key])
            if g.shape != p.shape:
                raise ValueError(f"gradient {key!r} has shape {g.shape}, parameter has {p.shape}")
            self._step(key, p, g.astype(p.dtype, copy=False))

    def _step(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Name, hyperparameters, step count and copies of all state arrays."""
        return {
            "name": self.name,
            "hyperparams": {k: getattr(self, k) for k in self._hyper},
            "iter": self.iter,
            "slots": {s: {k: v.copy() for k, v in d.items()} for s, d in self.slots.items()},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (all-or-nothing; ValueError on a mismatch)."""
        if d.get("name") != self.name:
            raise ValueError(f"state of optimizer {d.get('name')!r} cannot be loaded into {self.name!r}")
        hyper = dict(d.get("hyperparams", {}))
        if set(hyper) != set(self._hyper):
            raise ValueError(f"{self.name} hyperparameters must be {sorted(self._hyper)}, got {sorted(hyper)}")
        slots = d.get("slots", {})
        if set(slots) != set(self._slots):
            raise ValueError(f"{self.name} state slots must be {sorted(self._slots)}, got {sorted(slots)}")
        new_slots = {}
        for s, arrays in slots.items():
            new_slots[s] = {}
            for k, v in arrays.items():
                a = np.array(v)
                if not np.issubdtype(a.dtype, np.floating):
                    raise ValueError(f"{self.name} state {s}[{k!r}] must be a float array, got {a.dtype}")
                new_slots[s][k] = a
        it = int(d.get("iter", 0))
        Optimizer.__init__(self, **hyper)
        self.iter = it
        self.slots = new_slots

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``."""

    name = "sgd"

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=lr)

    def _step(self, key, p, g):
        p -= self.lr * g


class Momentum(Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``."""

    name = "momentum"
    _slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr=lr, momentum=momentum)

    def _velocity(self, key, p, g):
        """v = momentum * v - lr * g, in place; returns v."""
        v = self._slot("v", key, p)
        v *= self.momentum
        v -= self.lr * g
        return v

    def _step(self, key, p, g):
        p += self._velocity(key, p, g)


class Nesterov(Momentum):
    """Nesterov's accelerated gradient, in the book's form (lr 0.01, momentum 0.9)."""

    name = "nesterov"

    def _step(self, key, p, g):
        v = self._velocity(key, p, g)
        p += self.momentum * self.momentum * v
        p -= (1 + self.momentum) * self.lr * g


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + 1e-7)``."""

    name = "adagrad"
    _slots = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=lr)

    def _step(self, key, p, g):
        h = self._slot("h", key, p)
        h += g * g
        p -= self.lr * g / (np.sqrt(h) + p.dtype.type(1e-7))


class RMSprop(Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g*g; p -= lr * g / (sqrt(h) + 1e-7)``."""

    name = "rmsprop"
    _slots = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr=lr, decay_rate=decay_rate)

    def _step(self, key, p, g):
        h = self._slot("h", key, p)
        h *= self.decay_rate
        h += (1 - self.decay_rate) * g * g
        p -= self.lr * g / (np.sqrt(h) + p.dtype.type(1e-7))


class Adam(Optimizer):
    """Adam (lr 0.001, beta1 0.9, beta2 0.999) with the book's bias-corrected step size."""

    name = "adam"
    _slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr=lr, beta1=beta1, beta2=beta2)

    @classmethod
    def _check(cls, hyperparams: dict) -> None:
        for key in ("beta1", "beta2"):
            if not 0 <= hyperparams[key] < 1:
                raise ValueError(f"Adam: {key} must be in [0, 1), got {hyperparams[key]!r}")

    def update(self, params: Params, grads: Params) -> None:
        # The bias-corrected step size depends only on the step count.
        t = self.iter + 1
        self._lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        super().update(params, grads)

    def _step(self, key, p, g):
        # One fused pass on the active backend (numba / cpp), bit for bit the NumPy formula
        # of ops.adam_update, which runs for other dtypes and strides.
        ops.adam_update(p, g, self._slot("m", key, p), self._slot("v", key, p),
                        self._lr_t, self.beta1, self.beta2, 1e-7)


_OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}


def get_optimizer(name: str, **kwargs: float) -> Optimizer:
    """An optimizer by the book's name (case-insensitive): sgd, momentum, nesterov, adagrad, rmsprop, adam."""
    cls = _OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for {cls.__name__}: {exc}") from None
