"""Book chapter 5 (layer_naive.py, buy_apple.py, buy_apple_orange.py): the computational graph.

fastdl.layers.MulLayer and AddLayer, forward then backward, with the book's prices:
2 apples at 100 and tax 1.1 -> price 220, dApple 2.2, dApple_num 110, dTax 200;
adding 3 oranges at 150 -> price 715, dApple 2.2, dApple_num 110, dOrange 3.3,
dOrange_num 165, dTax 650.  Prints the numbers (no figure).
"""
from __future__ import annotations

import _common
from fastdl.layers import AddLayer, MulLayer


def buy_apple() -> None:
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    print("buy_apple")
    print("price:", int(price))
    print("dApple:", dapple)
    print("dApple_num:", int(dapple_num))
    print("dTax:", dtax)


def buy_apple_orange() -> None:
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    all_price = add.forward(mul_apple.forward(100, 2), mul_orange.forward(150, 3))
    price = mul_tax.forward(all_price, 1.1)
    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    print("buy_apple_orange")
    print("price:", int(price))
    print("dApple:", dapple)
    print("dApple_num:", int(dapple_num))
    print("dOrange:", dorange)
    print("dOrange_num:", int(dorange_num))
    print("dTax:", dtax)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    buy_apple()
    buy_apple_orange()


if __name__ == "__main__":
    main()
