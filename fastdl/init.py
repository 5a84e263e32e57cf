"""Weight initialisation (book chapter 6): fixed std, Xavier and He.

Weights are drawn from a normal distribution with mean 0 and a standard
deviation that depends on the fan-in ``n`` of the layer:

* fixed: any number, e.g. the book's 0.01;
* Xavier (for sigmoid / tanh): ``sqrt(1 / n)``;
* He (for ReLU): ``sqrt(2 / n)``.

The fan-in of an Affine weight (in, out) is ``in``; of a convolution weight
(FN, C, kh, kw) it is ``C * kh * kw``.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

__all__ = ["RNGLike", "as_rng", "fan_in", "init_std", "normal", "he_normal", "xavier_normal"]

#: A seed, a Generator, or None (NumPy's global random state, see :func:`as_rng`).
RNGLike = Union[int, np.random.Generator, None]

_NAMED = {"relu": 2.0, "he": 2.0, "sigmoid": 1.0, "xavier": 1.0}


def as_rng(seed: RNGLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, a Generator (returned as is) or None.

    None draws the Generator's seed from NumPy's global random state, so the
    book's ``np.random.seed(...)`` at the top of a script makes fastdl's
    initial weights (and dropout masks) reproducible too.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = np.random.randint(0, 2 ** 32, size=4, dtype=np.uint64)  # the global RandomState
    return np.random.default_rng(seed)


def fan_in(shape: Sequence[int]) -> int:
    """Inputs per output unit: ``shape[0]`` for Affine (in, out), ``prod(shape[1:])`` for conv."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0]
    if len(shape) == 4:
        return shape[1] * shape[2] * shape[3]
    raise ValueError(f"fan_in is defined for 2-D (Affine) and 4-D (conv) weights, got shape {shape}")


def init_std(weight_init_std: Union[str, float], n: int) -> float:
    """The std for ``weight_init_std``: 'relu'/'he', 'sigmoid'/'xavier' (fan-in ``n``) or a number."""
    if isinstance(weight_init_std, str):
        key = weight_init_std.lower()
        if key not in _NAMED:
            raise ValueError(f"weight_init_std must be a number or one of {sorted(_NAMED)}, got {weight_init_std!r}")
        return math.sqrt(_NAMED[key] / n)
    std = float(weight_init_std)
    if not std >= 0 or math.isinf(std):
        raise ValueError(f"weight_init_std must be a finite number >= 0, got {weight_init_std!r}")
    return std


def normal(shape: Sequence[int], std: float, rng: RNGLike = None, dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` drawn from N(0, std**2), C-contiguous, of ``dtype``."""
    return (as_rng(rng).standard_normal(tuple(shape)) * std).astype(dtype)


def he_normal(shape: Sequence[int], rng: RNGLike = None, dtype=np.float32) -> np.ndarray:
    """He initialisation for ReLU layers: std ``sqrt(2 / fan_in(shape))``."""
    return normal(shape, init_std("he", fan_in(shape)), rng, dtype)


def xavier_normal(shape: Sequence[int], rng: RNGLike = None, dtype=np.float32) -> np.ndarray:
    """Xavier initialisation for sigmoid/tanh layers: std ``sqrt(1 / fan_in(shape))``."""
    return normal(shape, init_std("xavier", fan_in(shape)), rng, dtype)
