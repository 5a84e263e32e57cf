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

import inspect
import math
import numbers
from typing import Any, Dict

import numpy as np

from . import ops

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "Nesterov2016", "AdaGrad", "RMSprop", "Adam", "get_optimizer"]

Params = Dict[str, np.ndarray]

#: Hyperparameters that must lie in [0, 1).
_RATES = ("momentum", "beta1", "beta2", "decay_rate")


class Optimizer:
    """Base class: hyperparameters, named state slots and their (de)serialisation."""

    name = ""
    _slots: tuple[str, ...] = ()

    def __init__(self, **hyperparams: float) -> None:
        name = type(self).__name__
        for key, value in hyperparams.items():
            # NumPy scalars (np.float32(0.01), np.int64(1)) are numbers.Real; bools are not numbers here.
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name}: {key} must be a real number (int, float or NumPy scalar), "
                                f"got {type(value).__name__} {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"{name}: {key} must be a finite number, got {value!r}")
        if "lr" in hyperparams and not hyperparams["lr"] > 0:
            raise ValueError(f"{name}: lr must be > 0, got {hyperparams['lr']!r}")
        for key in _RATES:
            if key in hyperparams and not 0 <= hyperparams[key] < 1:
                raise ValueError(f"{name}: {key} must be in [0, 1), got {hyperparams[key]!r}")
        self._hyper = tuple(hyperparams)
        for key, value in hyperparams.items():
            setattr(self, key, float(value))
        self.iter = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self._slots}

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
        """One step on every entry of ``params`` from ``grads`` (same keys), all or nothing.

        Every gradient is checked (present, real dtype, the parameter's shape)
        before any parameter is stepped.  Arrays are updated in place; a
        parameter that is a number (Python float or NumPy scalar, as in the
        book's ch. 6 ``optimizer_compare_naive``) is replaced in ``params``
        by its new value, of the same type.
        """
        work = [self._prepare(key, p, grads) for key, p in params.items()]
        self.iter += 1
        self._step_all(work)
        for key, p, _, back in work:
            if back is not None:
                params[key] = back(p)

    def _step_all(self, work: list) -> None:
        """The update of every (key, array, gradient, _) of ``work``, in order."""
        for key, p, g, _ in work:
            self._step(key, p, g)

    def _prepare(self, key: str, p: Any, grads: Params):
        """Validate parameter ``key`` and its gradient; -> (key, array, gradient, write-back or None)."""
        back = None
        if isinstance(p, np.ndarray):
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"parameter {key!r} must be a float array (it is updated in place), got {p.dtype}")
            if not p.flags.writeable:
                raise ValueError(f"parameter {key!r} must be writeable (it is updated in place)")
        elif isinstance(p, numbers.Real) and not isinstance(p, (bool, np.bool_)):
            kind = type(p) if isinstance(p, np.floating) else float
            p = np.array(p, dtype=kind if isinstance(p, np.floating) else np.float64)
            back = (lambda a, kind=kind: kind(a[()]))
        else:
            raise TypeError(f"parameter {key!r} must be a float ndarray or a real number, "
                            f"got {type(p).__name__}")
        if key not in grads:
            raise ValueError(f"grads has no entry for parameter {key!r} (grads keys: {sorted(grads)})")
        g = np.asarray(grads[key])
        if g.dtype == np.bool_ or g.dtype.kind not in "fiu":
            raise TypeError(f"gradient {key!r} must be real numbers, got dtype {g.dtype}")
        if g.shape != p.shape:
            raise ValueError(f"gradient {key!r} has shape {g.shape}, parameter has {p.shape}")
        for slot in self._slots:
            state = self.slots[slot].get(key)
            if state is not None and np.shape(state) != p.shape:
                raise ValueError(f"{self.name} state {slot}[{key!r}] has shape {np.shape(state)}, "
                                 f"parameter has {p.shape}")
        return key, p, g.astype(p.dtype, copy=False), back

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
    """Nesterov's accelerated gradient exactly as the book's ``common/optimizer.py`` (lr 0.01, momentum 0.9).

    ``p += momentum**2 * v - (1 + momentum) * lr * g`` with the velocity of the
    previous step, then ``v = momentum * v - lr * g`` -- the form of the paper
    the book cites (Bengio, Boulanger-Lewandowski and Pascanu, arXiv 1212.0901)
    and of the book's repository since its commit 89eadd0 ("Fix Nesterov update
    function", January 2021).  One step from p=1, g=1, lr=0.1, momentum=0.9
    gives 0.81.  The repository's code before that fix is :class:`Nesterov2016`.
    """

    name = "nesterov"

    def _step(self, key, p, g):
        v = self._slot("v", key, p)
        p += self.momentum * self.momentum * v
        p -= (1 + self.momentum) * self.lr * g
        self._velocity(key, p, g)


class Nesterov2016(Momentum):
    """The book repository's Nesterov from its first commit (2016) until its 2021 fix.

    ``v = momentum * v - lr * g; p += momentum**2 * v - (1 + momentum) * lr * g``
    -- the velocity is updated *first* and the new one is used, so one step from
    p=1, g=1, lr=0.1, momentum=0.9 gives 0.729 instead of :class:`Nesterov`'s
    0.81.  Kept to reproduce runs made with the book's code of those years.
    """

    name = "nesterov_2016"

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

    def update(self, params: Params, grads: Params) -> None:
        # The bias-corrected step size depends only on the step count.
        t = self.iter + 1
        self._lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        super().update(params, grads)

    def _step_all(self, work: list) -> None:
        # All parameters in one call where the backend has one (cpp), each as _step would.
        ms = [self._slot("m", key, p) for key, p, _, _ in work]
        vs = [self._slot("v", key, p) for key, p, _, _ in work]
        if not ops._adam_update_many_checked_by_caller([w[1] for w in work], [w[2] for w in work], ms, vs,
                                                       self._lr_t, self.beta1, self.beta2, 1e-7):
            super()._step_all(work)

    def _step(self, key, p, g):
        # One fused pass on the active backend (numba / cpp), bit for bit the NumPy formula
        # of ops.adam_update, which runs for other dtypes and strides.
        ops._adam_update_checked_by_caller(p, g, self._slot("m", key, p), self._slot("v", key, p),
                                           self._lr_t, self.beta1, self.beta2, 1e-7)


_OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Nesterov2016, AdaGrad, RMSprop, Adam)}


def get_optimizer(name: str, **kwargs: float) -> Optimizer:
    """An optimizer by name (case-insensitive): sgd, momentum, nesterov (the book's
    code), nesterov_2016 (the book's code before its 2021 fix), adagrad, rmsprop, adam.
    ValueError for an unknown name or argument."""
    cls = _OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(_OPTIMIZERS)}")
    allowed = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"bad arguments for {cls.__name__}: {unknown} (it takes {sorted(allowed)})")
    return cls(**kwargs)
