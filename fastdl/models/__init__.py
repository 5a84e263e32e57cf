"""The book's networks, and :func:`build_model` to make one by name (e.g. from a checkpoint's config).

Every model has ``params`` (name -> array), ``predict(x, train_flg=False)``,
``loss(x, t)``, ``accuracy(x, t, batch_size=100)``, ``gradient(x, t)``
(backprop), ``numerical_gradient(x, t)``, ``loss_and_gradient(x, t)``,
``config()``, ``state_dict()``/``load_state_dict()`` and
``save_params(path)``/``load_params(path)``; a ``dtype`` (float32 by
default) and a ``seed`` for reproducible initialisation.
"""
from __future__ import annotations

from typing import Any

from ._base import Model
from .deep_convnet import DeepConvNet
from .multi_layer_net import MultiLayerNet, MultiLayerNetExtend
from .simple_convnet import SimpleConvNet
from .two_layer_net import TwoLayerNet

__all__ = ["Model", "TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet",
           "DeepConvNet", "MODELS", "build_model"]

#: Model classes by their :func:`build_model` name.
MODELS: dict[str, type[Model]] = {cls.name: cls for cls in
                                  (TwoLayerNet, MultiLayerNet, MultiLayerNetExtend, SimpleConvNet, DeepConvNet)}


def build_model(name: str, **config: Any) -> Model:
    """A model by name (two_layer, multi_layer, multi_layer_extend, simple_convnet, deep_convnet).

    ``config`` are the constructor's keyword arguments, e.g. ``model.config()``
    of the model to rebuild.
    """
    cls = MODELS.get(name)
    if cls is None:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return cls(**config)
