"""What every network shares: a layer sequence, a loss, backprop, accuracy, weights I/O.

A model keeps its parameters in ``params`` (name -> array); its layers hold
references to the same arrays, so an optimizer's in-place update reaches
them.  Inputs of another real dtype are cast to the model's ``dtype``.

Bad input is refused before any layer runs, with a message naming the model
and the argument: complex, bool, object or string ``x`` raise TypeError (never
cast silently); an ``x`` that is not a batch of the model's samples raises
ValueError with the expected shape.  An empty batch (N = 0) gives an empty
result, (0, output_size), as NumPy and PyTorch do.  ``accuracy`` checks its
labels as ``loss`` does.  A model can be copied (``copy.deepcopy``) and
pickled at any time, after a forward pass too.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import io, ops
from ..functions import book_labels
from ..gradient import numerical_gradient as _numerical_gradient
from ..init import RNGLike
from ..layers import Affine, BatchNormalization, Dropout, SoftmaxWithLoss
from ..backend import fusion_enabled
from ._fuse import compile_layers

__all__ = ["Model"]


def _model_dtype(dtype: DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers and tuples as lists (JSON-serialisable)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


class Layers(OrderedDict):
    """A model's layers by name, in order.  An int indexes them by position, as the book's
    DeepConvNet keeps its layers in a list: ``layers[0]`` is the first Convolution."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            layers = list(self.values())
            if not -len(layers) <= key < len(layers):
                raise IndexError(f"layer index {key} out of range: the model has {len(layers)} layers")
            return layers[key]
        return super().__getitem__(key)


class Model:
    """Base class of the book's networks.

    Subclasses build ``self.layers`` (a :class:`Layers`: an OrderedDict of
    layers, applied in order, that an int also indexes) with :meth:`_add`,
    which also records where each parameter's gradient and each running
    statistic lives.  ``last_layer`` is the
    :class:`~fastdl.layers.SoftmaxWithLoss` on top.
    """

    #: Name in :func:`fastdl.models.build_model`.
    name = ""

    def __init__(self, config: dict[str, Any], dtype: DTypeLike, seed: RNGLike) -> None:
        self.dtype = _model_dtype(dtype)
        seed_value = int(seed) if isinstance(seed, (int, np.integer)) else None
        self._config = _plain(dict(config, dtype=self.dtype.name, seed=seed_value))
        self.params: dict[str, np.ndarray] = {}
        self.layers: Layers = Layers()
        self.last_layer = SoftmaxWithLoss()
        self._grads: dict[str, tuple[Any, str]] = {}
        self._buffers: dict[str, tuple[Any, str]] = {}
        self.weight_decay_lambda = 0.0
        self._input_shape: Optional[tuple[int, ...]] = None

    # ------------------------------------------------------------------ building

    def _param(self, key: str, value: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[key] = arr
        return arr

    def _add(self, name: str, layer: Any, grads: Optional[dict[str, str]] = None,
             buffers: Optional[dict[str, str]] = None) -> None:
        """Append ``layer``; ``grads`` maps param key -> layer attribute (e.g. 'W1' -> 'dW')."""
        self.layers[name] = layer
        for key, attr in (grads or {}).items():
            self._grads[key] = (layer, attr)
        for key, attr in (buffers or {}).items():
            self._buffers[key] = (layer, attr)

    # ------------------------------------------------------------------ forward / backward

    def _first_affine(self) -> Affine:
        return next(layer for layer in self.layers.values() if isinstance(layer, Affine))

    def _output_size(self) -> int:
        """K, the number of scores per sample (the last Affine's outputs)."""
        return int(np.shape([layer for layer in self.layers.values() if isinstance(layer, Affine)][-1].W)[1])

    def _check_x(self, x: ArrayLike, what: str = "x") -> np.ndarray:
        """``x`` as an array (not cast, not copied) after the checks every entry point shares.

        TypeError for complex, bool, object or string input (never cast silently); ValueError,
        with the expected shape, for anything but a batch (N, ...) of the model's samples.
        N = 0 is a batch too.
        """
        name = type(self).__name__
        a = np.asarray(x)
        if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
            raise TypeError(f"{name}: {what} must be real numbers (int or float), got dtype {a.dtype}")
        if self._input_shape is not None:  # images: (N, C, H, W) or flat (N, C*H*W)
            sample = tuple(self._input_shape)
            flat = math.prod(sample)
            ok = a.shape[1:] == sample or (a.ndim == 2 and a.shape[1] == flat)
            want = f"(N, {', '.join(map(str, sample))}) or flat (N, {flat})"
        else:  # vectors: (N, D), or (N, ...) with D values per sample as Affine takes them
            flat = int(np.shape(self._first_affine().W)[0])
            ok = a.ndim >= 2 and math.prod(a.shape[1:]) == flat
            want = f"(N, {flat})"
        if not ok:
            hint = f"; one sample? use {what}[None] or {what}.reshape(1, -1)" if a.ndim == 1 else ""
            raise ValueError(f"{name}: {what} must have shape {want} (N samples, N >= 0), got {a.shape}{hint}")
        return a

    def _cast(self, x: ArrayLike) -> np.ndarray:
        x = self._check_x(x).astype(self.dtype, copy=False)
        if self._input_shape is not None and x.ndim == 2:
            x = x.reshape((x.shape[0],) + self._input_shape)  # flat images (N, C*H*W)
        return x

    def _compiled(self, train: bool) -> list[Any]:
        """The steps of ``compile_layers`` for this layer list, compiled once per mode.

        The key holds every layer's id and type: the cached steps keep those layers
        alive, so an id cannot be reused while its entry exists, and replacing a layer
        in ``self.layers`` (or switching fusion) compiles anew.
        """
        key = (train, fusion_enabled(), tuple((id(l), type(l)) for l in self.layers.values()))
        cache = self.__dict__.setdefault("_step_cache", {})
        steps = cache.get(key)
        if steps is None:
            if len(cache) >= 8:  # layer lists edited many times: keep the newest few
                cache.clear()
            steps = cache[key] = compile_layers(self.layers.values(), train=train)
        return steps

    def predict(self, x: ArrayLike, train_flg: bool = False) -> np.ndarray:
        """Scores (logits) (N, output_size) in the model's dtype; ``train_flg`` for dropout/BN.

        x: (N, input_size), or images (N, C, H, W) or flat (N, C*H*W) for the
        convnets; N = 0 gives (0, output_size).
        """
        x = self._cast(x)
        # fused runs (forward-only ones when not training) unless fastdl.set_fusion(False)
        self._steps = self._compiled(bool(train_flg))
        for layer in self._steps:
            if isinstance(layer, (Dropout, BatchNormalization)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def _weight_decay_loss(self) -> float:
        if not self.weight_decay_lambda:
            return 0.0
        total = sum(float(np.sum(np.square(self.params[k], dtype=np.float64))) for k in self._decay_keys())
        return 0.5 * self.weight_decay_lambda * total

    def _decay_keys(self) -> list[str]:
        """Parameters under L2 weight decay: the Affine weights (as the book)."""
        return [k for k in self.params if k.startswith("W")]

    def loss(self, x: ArrayLike, t: ArrayLike, train_flg: bool = False) -> float:
        """Mean softmax cross-entropy of ``predict(x)`` against ``t``, plus weight decay.

        t: int labels (N,) or one-hot (N, output_size).
        """
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self._weight_decay_loss()

    def loss_and_gradient(self, x: ArrayLike, t: ArrayLike) -> tuple[float, dict[str, np.ndarray]]:
        """Training-mode loss and the gradients of all ``params`` by backpropagation.

        Afterwards ``last_layer.x`` holds this batch's logits (N, output_size).
        """
        loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self._steps):  # the steps this batch's forward ran
            dout = layer.backward(dout)
        grads = {key: getattr(layer, attr) for key, (layer, attr) in self._grads.items()}
        if self.weight_decay_lambda:
            for key in self._decay_keys():
                grads[key] = grads[key] + self.dtype.type(self.weight_decay_lambda) * self.params[key]
        return loss, grads

    def gradient(self, x: ArrayLike, t: ArrayLike) -> dict[str, np.ndarray]:
        """Gradients of the training loss for every key of ``params`` (same shapes and dtype)."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x: ArrayLike, t: ArrayLike) -> dict[str, np.ndarray]:
        """The same gradients by central differences (slow: two forward passes per weight)."""
        def f(_):
            return self.loss(x, t, train_flg=True)

        return {key: _numerical_gradient(f, p) for key, p in self.params.items()}

    def accuracy(self, x: ArrayLike, t: ArrayLike, batch_size: int = 100) -> float:
        """Fraction of samples whose top score is the label, predicted ``batch_size`` at a time.

        t: int labels (N,) or one-hot (N, output_size).  Unlike the book, the
        last partial batch counts too.  x is checked as by :meth:`predict`, t as by
        :meth:`loss`: IndexError for a label outside ``[0, output_size)`` (-1
        too), ValueError for fractional labels, one-hot targets of another width
        or another number of labels than samples, TypeError for bool or complex t.
        """
        name = type(self).__name__
        x = self._check_x(x)
        n = x.shape[0]
        if n == 0:
            raise ValueError(f"{name}.accuracy: x is an empty batch (0 samples): the accuracy of nothing "
                             f"is undefined")
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"{name}.accuracy: batch_size must be an int >= 1, got "
                            f"{type(batch_size).__name__} {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"{name}.accuracy: batch_size must be >= 1, got {batch_size}")
        batch_size = int(batch_size)
        # the labels pass loss's checks (SoftmaxWithLoss -> ops.softmax_cross_entropy)
        k = self._output_size()
        t = book_labels(np.asarray(t), (n, k))
        if t.ndim == 2 and t.dtype.kind in "iu":
            t = t.astype(np.float64)  # integer one-hot targets, as SoftmaxWithLoss takes them
        try:
            t = ops._check_targets(t, (n, k))
        except (TypeError, ValueError, IndexError) as exc:
            raise type(exc)(f"{name}.accuracy: {exc} (x has {n} samples)") from None
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        correct = 0
        for i in range(0, n, batch_size):
            y = self.predict(x[i:i + batch_size])
            correct += int(np.sum(np.argmax(y, axis=1) == t[i:i + batch_size]))
        return correct / n

    # ------------------------------------------------------------------ state and weights

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict: ``build_model(self.name, **config)``."""
        return dict(self._config)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and batch-norm running statistics, by name."""
        state = {k: v.copy() for k, v in self.params.items()}
        state.update({k: np.array(getattr(layer, attr)) for k, (layer, attr) in self._buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set parameters and running statistics from ``state`` (cast to the model's dtype).

        Keys and shapes must match :meth:`state_dict` exactly; otherwise
        ``ValueError`` is raised and the model is left unchanged.
        """
        want = {k: v.shape for k, v in self.params.items()}
        want.update({k: np.shape(getattr(layer, attr)) for k, (layer, attr) in self._buffers.items()})
        missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
        if missing or extra:
            raise ValueError(f"{type(self).__name__}: weights do not match the model "
                             f"(missing {missing}, unexpected {extra})")
        new = {}
        for key, shape in want.items():
            arr = np.asarray(state[key])
            if arr.shape != shape:
                raise ValueError(f"{type(self).__name__}: {key} has shape {arr.shape}, the model needs {shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"{type(self).__name__}: {key} must be a float array, got {arr.dtype}")
            new[key] = arr.astype(self.dtype)
        for key, arr in new.items():
            if key in self.params:
                self.params[key][...] = arr
            else:
                layer, attr = self._buffers[key]
                setattr(layer, attr, arr)

    def save_params(self, path: io.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` as ``.npz`` (atomically, no pickle)."""
        io.save_params(self.state_dict(), path)

    def load_params(self, path: io.PathLike) -> None:
        """Load weights from an ``.npz`` of :meth:`save_params` or one of the book's ``.pkl`` files.

        The book's pickles are read through a restricted unpickler.  A wrong
        file raises ``ValueError`` and leaves the model unchanged.
        """
        self.load_state_dict(io.load_params_file(path))
