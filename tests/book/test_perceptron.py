"""Logic gates of chapter 2: full truth tables."""
import pytest

from fastdl.perceptron import AND, NAND, OR, XOR

INPUTS = [(0, 0), (1, 0), (0, 1), (1, 1)]


@pytest.mark.parametrize("gate, outputs", [
    (AND, [0, 0, 0, 1]),
    (NAND, [1, 1, 1, 0]),
    (OR, [0, 1, 1, 1]),
    (XOR, [0, 1, 1, 0]),
])
def test_truth_table(gate, outputs):
    assert [gate(a, b) for a, b in INPUTS] == outputs
    assert all(type(gate(a, b)) is int for a, b in INPUTS)
