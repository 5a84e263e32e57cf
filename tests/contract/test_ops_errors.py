"""Bad inputs to fastdl.ops raise the documented exception with a message that says what is wrong.

``TypeError`` for unsupported dtypes, ``ValueError`` for shapes and
hyperparameters, ``IndexError`` for labels out of range.  Validation happens
in ops before any backend runs, so these tests use the default backend.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from fastdl import ops

X = np.zeros((2, 3, 6, 6), np.float32)
W = np.zeros((4, 3, 3, 3), np.float32)
B = np.zeros(4, np.float32)


# --------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.bool_, np.complex64])
def test_unsupported_input_dtypes(dtype):
    x = X.astype(dtype)
    with pytest.raises(TypeError, match=r"x must be float32 or float64.*" + np.dtype(dtype).name):
        ops.im2col(x, 3, 3)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.conv2d_forward(x, W.astype(dtype))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.maxpool2d_forward(x, 2, 2)
    with pytest.raises(TypeError, match="logits must be float32 or float64"):
        ops.softmax_cross_entropy(np.zeros((2, 3), dtype), np.array([0, 1]))
    with pytest.raises(TypeError, match="col must be float32 or float64"):
        ops.col2im(np.zeros((2 * 16, 27), dtype), X.shape, 3, 3)


def test_python_lists_of_ints_are_not_silently_cast():
    with pytest.raises(TypeError, match="int64"):
        ops.softmax_cross_entropy([[1, 2], [3, 4]], [0, 1])


def test_weight_dtype_must_match_input():
    with pytest.raises(TypeError, match="W has dtype float64 but x has float32"):
        ops.conv2d_forward(X, W.astype(np.float64), B)
    with pytest.raises(TypeError, match="b has dtype float64 but x has float32"):
        ops.conv2d_forward(X, W, B.astype(np.float64))


def test_dy_dtype_must_match_forward():
    y, ctx = ops.conv2d_forward(X, W, B, 1, 1)
    with pytest.raises(TypeError, match="dy has dtype float64 but the forward pass ran in float32"):
        ops.conv2d_backward(y.astype(np.float64), ctx)


def test_backward_needs_the_forward_context():
    with pytest.raises(TypeError, match="ConvContext"):
        ops.conv2d_backward(np.zeros((2, 4, 4, 4), np.float32), ("not", "a", "context"))


@pytest.mark.parametrize("t", [np.array([True, False]), np.array(["a", "b"]), np.array([0j, 1j])])
def test_label_dtypes(t):
    with pytest.raises(TypeError, match="t must be integer labels or float targets"):
        ops.softmax_cross_entropy(np.zeros((2, 3)), t)


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("shape", [(6, 6), (3, 6, 6), (1, 2, 3, 6, 6)])
def test_wrong_ndim(shape):
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=re.escape(f"x must be 4-D, got shape {shape}")):
        ops.conv2d_forward(x, W)
    with pytest.raises(ValueError, match="x must be 4-D"):
        ops.maxpool2d_forward(x, 2, 2)
    with pytest.raises(ValueError, match="x must be 4-D"):
        ops.im2col(x, 2, 2)
    with pytest.raises(ValueError, match="W must be 4-D"):
        ops.conv2d_forward(X, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        ops.softmax_cross_entropy(np.zeros(shape + (1,)), np.zeros(shape[0], np.int64))


def test_channel_mismatch():
    with pytest.raises(ValueError, match=r"W expects 5 input channels.*x has 3"):
        ops.conv2d_forward(X, np.zeros((4, 5, 3, 3), np.float32))


def test_bias_shape():
    with pytest.raises(ValueError, match=r"b must have shape \(4,\)"):
        ops.conv2d_forward(X, W, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="b must be 1-D"):
        ops.conv2d_forward(X, W, np.zeros((4, 1), np.float32))


@pytest.mark.parametrize("k, pad", [((9, 3), 1), ((3, 9), 1), ((7, 7), 0), ((11, 11), 2)])
def test_kernel_larger_than_padded_input(k, pad):
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        ops.conv2d_forward(X, np.zeros((4, 3) + k, np.float32), pad=pad)
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        ops.im2col(X, *k, pad=pad)


def test_pool_window_larger_than_input():
    with pytest.raises(ValueError, match=r"pool window \(7, 7\) is larger than the padded input \(6, 6\)"):
        ops.maxpool2d_forward(X, 7, 7)


def test_wrong_dy_shape():
    y, ctx = ops.conv2d_forward(X, W, B, 1, 1)
    with pytest.raises(ValueError, match=r"dy must have the forward output's shape \(2, 4, 6, 6\)"):
        ops.conv2d_backward(y[:, :, :5], ctx)
    _, am = ops.maxpool2d_forward(X, 2, 2)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 3, 3\)"):
        ops.maxpool2d_backward(np.zeros((2, 3, 3, 2), np.float32), am, X.shape, 2, 2)


def test_pool_backward_argmax_checks():
    _, am = ops.maxpool2d_forward(X, 2, 2)
    dy = np.zeros(am.shape, np.float32)
    with pytest.raises(TypeError, match="argmax must be int64"):
        ops.maxpool2d_backward(dy, am.astype(np.int32), X.shape, 2, 2)
    with pytest.raises(ValueError, match=r"argmax must have shape \(2, 3, 3, 3\)"):
        ops.maxpool2d_backward(dy, am[:, :, :2], X.shape, 2, 2)


@pytest.mark.parametrize("bad", [-1, 36, 10**12])
def test_pool_backward_argmax_outside_the_plane(backend, bad):
    """Every backend refuses an argmax that points outside the input plane (never a wrong dx)."""
    _, am = ops.maxpool2d_forward(X, 2, 2)
    am = am.copy()
    am[1, 2, 0, 1] = bad
    dy = np.ones(am.shape, np.float32)
    with pytest.raises(ValueError, match="outside"):
        ops.maxpool2d_backward(dy, am, X.shape, 2, 2)


def test_col2im_shapes():
    col = np.zeros((2 * 16, 27), np.float32)
    with pytest.raises(ValueError, match=r"col must have shape \(32, 27\)"):
        ops.col2im(col[:, :26], X.shape, 3, 3)
    with pytest.raises(ValueError, match="x_shape must be a 4-tuple"):
        ops.col2im(col, (2, 3, 6), 3, 3)
    with pytest.raises(ValueError, match="x_shape must be a 4-tuple"):
        ops.col2im(col, (2, 3, 6, -6), 3, 3)
    with pytest.raises(ValueError, match="x_shape must be a 4-tuple of ints"):
        ops.col2im(col, (2, 3, 6, 6.0), 3, 3)


def test_label_shapes():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"integer labels t must have shape \(3,\)"):
        ops.softmax_cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"one-hot targets t must have logits' shape \(3, 4\)"):
        ops.softmax_cross_entropy(z, np.zeros((3, 5)))


# --------------------------------------------------------------------------- hyperparameters

@pytest.mark.parametrize("stride", [0, -1, -2])
def test_stride_must_be_positive(stride):
    with pytest.raises(ValueError, match=f"stride must be >= 1, got {stride}"):
        ops.conv2d_forward(X, W, stride=stride)
    with pytest.raises(ValueError, match=f"stride must be >= 1, got {stride}"):
        ops.maxpool2d_forward(X, 2, 2, stride=stride)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ops.im2col(X, 3, 3, stride=stride)


def test_pad_must_be_non_negative():
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        ops.conv2d_forward(X, W, pad=-1)
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        ops.maxpool2d_forward(X, 2, 2, pad=-1)


@pytest.mark.parametrize("bad", [1.5, "2", None, True, 2.0])
def test_hyperparameters_must_be_ints(bad):
    with pytest.raises(ValueError, match=r"stride must be an int >= 1, got"):
        ops.conv2d_forward(X, W, stride=bad)
    with pytest.raises(ValueError, match=r"pad must be an int >= 0, got"):
        ops.conv2d_forward(X, W, pad=bad)


def test_window_sizes_must_be_positive():
    with pytest.raises(ValueError, match="pool window height must be >= 1, got 0"):
        ops.maxpool2d_forward(X, 0, 2, stride=1)
    with pytest.raises(ValueError, match="kernel width must be >= 1, got 0"):
        ops.im2col(X, 2, 0)


@pytest.mark.parametrize("ph, pw, pad", [(2, 2, 2), (3, 3, 2), (4, 2, 2), (1, 1, 1)])
def test_pool_pad_at_most_half_the_window(ph, pw, pad):
    with pytest.raises(ValueError, match=rf"pad must be at most half the pool window \({ph}, {pw}\), got pad={pad}"):
        ops.maxpool2d_forward(X, ph, pw, stride=1, pad=pad)
    with pytest.raises(ValueError, match="pad must be at most half the pool window"):
        ops.maxpool2d_backward(np.zeros((2, 3, 6, 6), np.float32), np.zeros((2, 3, 6, 6), np.int64),
                               X.shape, ph, pw, stride=1, pad=pad)


# --------------------------------------------------------------------------- labels

@pytest.mark.parametrize("bad", [3, 4, 100, -1, -3])
def test_labels_out_of_range(bad):
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(IndexError, match=rf"label {bad} out of range \[0, 3\)"):
        ops.softmax_cross_entropy(z, np.array([0, bad]))


def test_labels_in_range_of_any_int_dtype_are_accepted():
    z = np.zeros((2, 3), np.float32)
    for dt in (np.uint8, np.int16, np.int32, np.int64):
        loss, d = ops.softmax_cross_entropy(z, np.array([0, 2], dt))
        assert loss == pytest.approx(np.log(3), rel=1e-6) and d.dtype == np.float32


# --------------------------------------------------------------------------- affine

AX = np.zeros((5, 4), np.float32)
AW = np.zeros((4, 3), np.float32)
AB = np.zeros(3, np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.bool_, np.complex64])
def test_affine_dtypes(dtype):
    with pytest.raises(TypeError, match="x must be float32 or float64.*" + np.dtype(dtype).name):
        ops.affine_forward(AX.astype(dtype), AW, AB)
    with pytest.raises(TypeError, match="dout must be float32 or float64"):
        ops.affine_backward(np.zeros((5, 3), dtype), AX, AW)
    with pytest.raises(TypeError, match="W has dtype float64 but x has float32"):
        ops.affine_forward(AX, AW.astype(np.float64), AB)
    with pytest.raises(TypeError, match="b has dtype float64 but x has float32"):
        ops.affine_forward(AX, AW, AB.astype(np.float64))
    with pytest.raises(TypeError, match="dout has dtype float64 but x has float32"):
        ops.affine_backward(np.zeros((5, 3)), AX, AW)


def test_affine_shapes_and_activation():
    with pytest.raises(ValueError, match=r"x must be 2-D, got shape \(5, 2, 2\)"):
        ops.affine_forward(AX.reshape(5, 2, 2), AW, AB)
    with pytest.raises(ValueError, match=r"W must have shape \(4, M\) for x of shape \(5, 4\), got \(3, 3\)"):
        ops.affine_forward(AX, np.zeros((3, 3), np.float32), AB)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\) for W of shape \(4, 3\), got \(4,\)"):
        ops.affine_forward(AX, AW, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"b must be 1-D"):
        ops.affine_forward(AX, AW, AB[None])
    with pytest.raises(ValueError, match=r"dout must have shape \(5, 3\), got \(5, 4\)"):
        ops.affine_backward(np.zeros((5, 4), np.float32), AX, AW)
    with pytest.raises(ValueError, match="act must be None, 'relu' or 'sigmoid', got 'tanh'"):
        ops.affine_forward(AX, AW, AB, act="tanh")
