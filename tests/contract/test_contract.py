"""The kernel contract is written once (fastdl.backends.contract) and every backend meets it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fastdl
from fastdl import backend, ops
from fastdl.backends import contract

BACKENDS = fastdl.available_backends()


def test_ops_exports_every_contract_kernel():
    for name in contract.KERNELS:
        assert name in ops.__all__ and callable(getattr(ops, name)), name


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_exports_every_contract_kernel(name):
    """A backend implements each kernel; a case it does not handle returns NotImplemented
    and ops runs the (counted) reference: there is no missing kernel, only declined cases."""
    mod = backend.backend_module(name)
    missing = [k for k in contract.KERNELS if not callable(getattr(mod, k, None))]
    assert not missing, f"backend {name!r} lacks {missing}"
    assert set(contract.KERNELS) <= set(mod.__all__)


def _stub_functions() -> set[str]:
    import fastdl as pkg

    tree = ast.parse(Path(pkg.__file__).with_name("_cpp.pyi").read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.skipif("cpp" not in BACKENDS, reason="fastdl._cpp not built")
def test_cpp_stub_declares_every_compiled_function():
    from fastdl import _cpp

    compiled = {n for n in dir(_cpp) if not n.startswith("_") and callable(getattr(_cpp, n))}
    stubbed = _stub_functions()
    assert compiled - stubbed == set(), f"_cpp.pyi misses {sorted(compiled - stubbed)}"
    assert stubbed - compiled == set(), f"_cpp.pyi declares {sorted(stubbed - compiled)} that _cpp lacks"


def test_cpp_stub_declares_every_contract_kernel():
    assert set(contract.KERNELS) <= _stub_functions()


def test_backend_names_are_the_registry_names():
    assert set(fastdl.available_backends()) <= {"numpy", "numba", "cpp"}
    assert fastdl.available_backends()[0] == "numpy"


@pytest.mark.parametrize("size,k,stride,pad,want", [(28, 5, 1, 0, 24), (28, 3, 1, 1, 28), (7, 3, 2, 1, 4),
                                                      (5, 5, 3, 0, 1)])
def test_conv_output_size_is_one_helper(size, k, stride, pad, want):
    assert contract.conv_output_size(size, k, stride, pad) == want
    assert ops.conv_output_size is contract.conv_output_size
