"""Type stub of the compiled extension fastdl._cpp (csrc/bindings.cpp).

Kernels take C-contiguous arrays of exactly float32 or float64 (no conversion is
done: fastdl.ops validates and prepares them) and release the GIL while they run.
"""
from typing import Any, TypedDict, overload

import numpy as np
import numpy.typing as npt

__version__: str

_F = np.float32 | np.float64

class BuildInfo(TypedDict):
    version: str
    compiler: str
    openmp: bool
    cpu_level: str  # 'scalar' | 'avx2' | 'avx512'

def build_info() -> BuildInfo: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def im2col(x: npt.NDArray[_F], kh: int, kw: int, stride: int, pad: int) -> npt.NDArray[_F]: ...
def col2im(col: npt.NDArray[_F], x_shape: tuple[int, int, int, int], kh: int, kw: int,
           stride: int, pad: int) -> npt.NDArray[_F]: ...
def maxpool2d_forward(x: npt.NDArray[_F], ph: int, pw: int, stride: int,
                      pad: int) -> tuple[npt.NDArray[_F], npt.NDArray[np.int64]]: ...
def maxpool2d_backward(dy: npt.NDArray[_F], argmax: npt.NDArray[np.int64],
                       x_shape: tuple[int, int, int, int], ph: int, pw: int, stride: int,
                       pad: int) -> npt.NDArray[_F]: ...
@overload
def softmax_cross_entropy(logits: npt.NDArray[_F], t: npt.NDArray[np.int64]) -> tuple[float, npt.NDArray[_F]]: ...
@overload
def softmax_cross_entropy(logits: npt.NDArray[_F], t: npt.NDArray[_F]) -> tuple[float, npt.NDArray[_F]]: ...

# Bound by the convolution kernels (csrc/conv*.cpp) when built:
def conv2d_forward(x: npt.NDArray[_F], W: npt.NDArray[_F], b: npt.NDArray[_F], stride: int,
                   pad: int) -> tuple[npt.NDArray[_F], Any]: ...
def conv2d_backward(dy: npt.NDArray[_F], state: Any,
                    need_dx: bool) -> tuple[npt.NDArray[_F] | None, npt.NDArray[_F], npt.NDArray[_F]]: ...
