"""MulLayer and AddLayer: the book's chapter 5 computational graph, with its own numbers."""
from __future__ import annotations

import numpy as np
import pytest

from fastdl.layers import AddLayer, MulLayer


def test_buy_apple():
    # the book's ch05/buy_apple.py: 2 apples at 100, tax 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert int(price) == 220
    assert dapple == pytest.approx(2.2)
    assert int(dapple_num) == 110
    assert dtax == 200


def test_buy_apple_orange():
    # the book's ch05/buy_apple_orange.py: 2 apples at 100, 3 oranges at 150, tax 1.1
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    all_price = add.forward(mul_apple.forward(100, 2), mul_orange.forward(150, 3))
    price = mul_tax.forward(all_price, 1.1)
    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert int(price) == 715
    assert int(dapple_num) == 110
    assert dapple == pytest.approx(2.2)
    assert dorange == pytest.approx(3.3)
    assert int(dorange_num) == 165
    assert dtax == 650


def test_arrays_elementwise():
    x, y = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    mul = MulLayer()
    np.testing.assert_array_equal(mul.forward(x, y), [3.0, -8.0])
    dx, dy = mul.backward(np.array([1.0, 0.5]))
    np.testing.assert_array_equal(dx, [3.0, -2.0])
    np.testing.assert_array_equal(dy, [1.0, 1.0])
    dx, dy = AddLayer().backward(np.array([2.0, 5.0]))
    np.testing.assert_array_equal(dx, [2.0, 5.0])
    np.testing.assert_array_equal(dy, [2.0, 5.0])


def test_mul_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        MulLayer().backward(1)
