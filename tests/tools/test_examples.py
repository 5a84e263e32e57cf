"""Every script in examples/ runs with --quick (headless, MPLBACKEND=Agg) and writes what it says.

Each script has an entry in SPECS: what it needs (nothing, training images, or the book's
weights with the MNIST test set from $FASTDL_TEST_DATA), the files it writes into --out
(PNG figures are checked for the PNG signature) and regular expressions its output must
match.  A script in examples/ without an entry fails ``test_every_example_has_a_spec``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import fastdl
from fastdl import datasets

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p.stem for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
PNG = b"\x89PNG\r\n\x1a\n"
NUM = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"

# The book's scripts of ch. 2-8 (its repository's master tree, commit 07b1161)
BOOK_SCRIPTS = {
    2: ["and_gate", "nand_gate", "or_gate", "xor_gate"],
    3: ["mnist_show", "neuralnet_mnist", "neuralnet_mnist_batch", "relu", "sig_step_compare",
        "sigmoid", "step_function"],
    4: ["gradient_1d", "gradient_2d", "gradient_method", "gradient_simplenet", "train_neuralnet",
        "two_layer_net"],
    5: ["buy_apple", "buy_apple_orange", "gradient_check", "layer_naive", "train_neuralnet",
        "two_layer_net"],
    6: ["batch_norm_gradient_check", "batch_norm_test", "hyperparameter_optimization",
        "optimizer_compare_mnist", "optimizer_compare_naive", "overfit_dropout",
        "overfit_weight_decay", "weight_init_activation_histogram", "weight_init_compare"],
    7: ["apply_filter", "gradient_check", "simple_convnet", "train_convnet", "visualize_filter"],
    8: ["awesome_net", "deep_convnet", "half_float_network", "misclassified_mnist",
        "train_deepnet"],
}


@dataclass
class Spec:
    needs: str = "none"             # "none" | "images" (train + test split) | "book:<weights file>"
    files: list[str] = field(default_factory=list)
    prints: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    backend: str = "cpp"
    timeout: int = 120


SPECS = {
    "ch02_perceptron_gates": Spec(files=["ch02_perceptron_gates.png"],
                                  prints=[r"AND  00->0  10->0  01->0  11->1", r"XOR  00->0  10->1  01->1  11->0"]),
    "ch03_activation_functions": Spec(files=[f"ch03_{k}.png" for k in ("step", "sigmoid", "relu", "compare")],
                                      prints=[r"sigmoid: f\(-1\), f\(0\), f\(1\) = 0.2689, 0.5000, 0.7311",
                                              r"relu: f\(-1\), f\(0\), f\(1\) = 0.0000, 0.0000, 1.0000"]),
    "ch03_mnist_show": Spec(needs="book:", files=["ch03_mnist_show.png"], args=["--dataset", "mnist"],
                            prints=[r"^mnist test\[0\]$", r"^7$", r"^\(784,\)$"]),
    "ch03_neuralnet_mnist": Spec(needs="book:sample_weight.pkl",
                                 prints=[r"one image at a time: Accuracy:0\.9\d+",
                                         r"batches of 100: Accuracy:0\.9\d+"]),
    "ch04_gradient_1d": Spec(files=["ch04_gradient_1d.png"],
                             prints=[r"at x = 5: 0\.(19999|20000)\d+", r"at x = 10: 0\.(29999|30000)\d+"]),
    "ch04_gradient_2d": Spec(files=["ch04_gradient_2d.png"], prints=[r"gradient at \[3\.0, 4\.0\]: \[6\. 8\.\]"]),
    "ch04_gradient_method": Spec(files=["ch04_gradient_method.png"],
                                 prints=[r"lr 0\.1, 20 steps: \[-0\.03458\d* +0\.04611\d*\]"]),
    "ch04_gradient_simplenet": Spec(prints=[r"dW =", r"row sums of dW: \[[-0. ]+\]"]),
    "ch04_train_neuralnet": Spec(needs="images", files=["ch04_train_neuralnet.png"],
                                 prints=[r"numerical: .* ms per iteration", r"backprop : .* ms per iteration",
                                         r"loss difference over 2 iterations: \d\.\d\de-(1\d|0[6-9])"]),
    "ch05_buy_apple": Spec(prints=[r"price: 220\ndApple: 2\.2\ndApple_num: 110\ndTax: 200",
                                   r"price: 715\ndApple: 2\.2\ndApple_num: 110\ndOrange: 3\.30*\d*\n"
                                   r"dOrange_num: 165\ndTax: 650"]),
    "ch05_gradient_check": Spec(needs="images", prints=[rf"^W1:{NUM}$", r"b2: relative error \d\.\d\de-(1\d|0[6-9])"]),
    "ch05_train_neuralnet": Spec(needs="images", files=["ch05_train_neuralnet.png"],
                                 prints=[r"train acc, test acc \| 0\.[3-9]\d+, 0\.[3-9]\d+"]),
    "ch06_batch_norm_gradient_check": Spec(needs="images", prints=[rf"^gamma1:{NUM}$", rf"^beta2:{NUM}$"]),
    "ch06_batch_norm_test": Spec(needs="images", files=["ch06_batch_norm_test.png"],
                                 prints=[r"std +1: train acc with BN 0\.\d+, without 0\.\d+"]),
    "ch06_hyperparameter_optimization": Spec(needs="images", files=["ch06_hyperparameter_optimization.png"],
                                             prints=[r"best: lr \d\.\d+e-0\d, weight decay"]),
    "ch06_optimizer_compare_mnist": Spec(needs="images", files=["ch06_optimizer_compare_mnist.png"],
                                         prints=[r"iteration 60: SGD .*, Momentum .*, AdaGrad .*, Adam "]),
    "ch06_optimizer_compare_naive": Spec(files=["ch06_optimizer_compare_naive.png"],
                                         prints=[r"^SGD +final point", r"^Adam +final point"]),
    "ch06_overfit_dropout": Spec(needs="images", files=["ch06_overfit_dropout.png"],
                                 prints=[r"no dropout: train acc", r"dropout ratio 0\.2: train acc"]),
    "ch06_overfit_weight_decay": Spec(needs="images", files=["ch06_overfit_weight_decay.png"],
                                      prints=[r"no weight decay: train acc", r"lambda = 0\.1: train acc"]),
    "ch06_weight_init_activation_histogram": Spec(files=["ch06_weight_init_activation_histogram.png"],
                                                  prints=[r"Xavier, sigmoid +layer-5 activation std"]),
    "ch06_weight_init_compare": Spec(needs="images", files=["ch06_weight_init_compare.png"],
                                     prints=[r"iteration 59: std=0\.01:2\.30\d+, Xavier:\d\.\d+, He:"]),
    "ch07_apply_filter": Spec(files=["ch07_apply_filter.png"], prints=[r"filter 3: response range"]),
    "ch07_gradient_check": Spec(prints=[rf"^W1 {NUM}$", rf"^b3 {NUM}$"]),
    "ch07_simple_convnet": Spec(needs="book:simple_convnet_params.pkl",
                                prints=[r"Pool1 +-> \(1, 30, 12, 12\)", r"test accuracy \(float64, 500 images\): 0\.9880"]),
    "ch07_train_convnet": Spec(needs="images", files=["ch07_train_convnet.png", "ch07_simple_convnet_params.npz"],
                               prints=[r"=== epoch:2, train acc:0\.\d+, test acc:0\.\d+ ==="]),
    "ch07_visualize_filter": Spec(needs="images", files=["ch07_visualize_filter_before.png",
                                                         "ch07_visualize_filter_after.png"],
                                  prints=[r"test accuracy 0\.\d+"]),
    "ch08_awesome_net": Spec(needs="images", files=["ch08_awesome_net.png"], prints=[r"test acc:0\.\d+ after 1 epoch"]),
    "ch08_deep_convnet": Spec(needs="book:deep_convnet_params.pkl",
                              prints=[r"Conv4 +-> \(1, 32, 16, 16\)", r"parameters: 123,552",
                                      r"test accuracy \(float64, 200 images\): 1\.0000"]),
    "ch08_half_float_network": Spec(needs="book:deep_convnet_params.pkl",
                                    prints=[r"float64 weights and arithmetic: 1\.0000",
                                            r"rounded to float16, float32 arithmetic: 1\.0000",
                                            r"every layer's output rounded to float16: 1\.0000"]),
    "ch08_misclassified_mnist": Spec(needs="book:deep_convnet_params.pkl", files=["ch08_misclassified_mnist.png"],
                                     prints=[r"test accuracy: 0\.99\d+ \(1000 images\)", r"\{1: \(\d, \d\)"]),
    "ch08_train_deepnet": Spec(needs="images", files=["ch08_train_deepnet.png", "ch08_deep_convnet_params.npz"],
                               prints=[r"=== epoch:1, train acc:0\.\d+, test acc:0\.\d+ ==="]),
}


def _have_images() -> bool:
    for name in ("fashion-mnist", "mnist"):
        try:
            datasets.find_dataset(name, splits=("train", "test"))
            return True
        except FileNotFoundError:
            pass
    return False


def _book_data(weights: str) -> Path | None:
    """$FASTDL_TEST_DATA if it holds the MNIST test set (and the book's ``weights`` file)."""
    root = os.environ.get("FASTDL_TEST_DATA")
    if not root:
        return None
    root = Path(root)
    try:
        datasets.find_dataset("mnist", root / "mnist", splits=("test",))
    except FileNotFoundError:
        return None
    if weights and not (root / "book" / weights).is_file():
        return None
    return root


def run_example(name: str, tmp_path: Path, backend: str | None = None) -> str:
    spec = SPECS[name]
    cmd = [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), "--quick", "--threads", "1",
           "--out", str(tmp_path), *spec.args]
    if spec.needs.startswith("book:"):
        root = _book_data(spec.needs[5:])
        if root is None:
            pytest.skip("needs $FASTDL_TEST_DATA with mnist/ (test set) and the book's weights")
        cmd += ["--data-dir", str(root / "mnist")]
    elif spec.needs == "images" and not _have_images():
        pytest.skip("needs Fashion-MNIST (apt-get install dataset-fashion-mnist) or MNIST")
    backend = backend or spec.backend
    if backend not in fastdl.available_backends():
        backend = "numpy"
    cmd += ["--backend", backend]
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=spec.timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    for pattern in spec.prints:
        assert re.search(pattern, r.stdout, flags=re.M), f"{pattern!r} not in:\n{r.stdout}"
    for f in spec.files:
        path = tmp_path / f
        assert path.is_file() and path.stat().st_size > 0, f"{f} not written:\n{r.stdout}"
        if f.endswith(".png"):
            assert path.read_bytes()[:8] == PNG, f
            assert f"wrote {path}" in r.stdout
    # it writes nothing it does not announce
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(spec.files), r.stdout
    return r.stdout


def test_every_example_has_a_spec():
    assert len(EXAMPLES) >= 31
    assert sorted(set(EXAMPLES) - set(SPECS)) == [], "new example without a test entry in SPECS"
    assert sorted(set(SPECS) - set(EXAMPLES)) == [], "SPECS entry without an example"


def test_every_book_script_has_a_row_in_the_readme():
    readme = (EXAMPLES_DIR / "README.md").read_text()
    assert sum(len(v) for v in BOOK_SCRIPTS.values()) == 42
    missing = [f"ch0{ch}/{name}.py" for ch, names in BOOK_SCRIPTS.items() for name in names
               if not re.search(rf"^\| {ch} \| `{name}\.py` \| \S", readme, flags=re.M)]
    assert missing == []


def test_every_example_is_in_the_readme():
    readme = (EXAMPLES_DIR / "README.md").read_text()
    missing = [name for name in EXAMPLES if f"{name}.py" not in readme]
    assert missing == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_quick(name, tmp_path):
    if name not in SPECS:
        pytest.fail(f"examples/{name}.py has no entry in SPECS")
    run_example(name, tmp_path)


# The quick test runs each example on the cpp backend; this cheap one (float64 conv forward)
# also runs on the others.  (ch07_gradient_check is not: its float64 numba kernels take a
# minute to compile before numba's cache is warm, and numerical gradients on numpy are slow.)
BACKEND_MATRIX = [("ch07_apply_filter", "numpy"), ("ch07_apply_filter", "numba")]


@pytest.mark.parametrize("name, backend", BACKEND_MATRIX, ids=[f"{n}-{b}" for n, b in BACKEND_MATRIX])
def test_example_on_another_backend(name, backend, tmp_path):
    if backend not in fastdl.available_backends():
        pytest.skip(f"backend {backend} not available")
    out = run_example(name, tmp_path, backend)
    assert f"backend: {backend}" in out


# ---------------------------------------------------------------- --dataset (issue 19)

def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, *args, "--quick", "--threads", "1", "--backend", "numpy",
                           "--out", str(tmp_path / "out")], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=120)


def _fake_mnist(directory: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """A tiny MNIST-shaped dataset (random pixels) in IDX files named as upstream."""
    directory.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        datasets.write_idx(directory / f"{split}-images-idx3-ubyte.gz",
                           rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        datasets.write_idx(directory / f"{split}-labels-idx1-ubyte.gz",
                           rng.integers(0, 10, n, dtype=np.uint8))
    return directory


@pytest.mark.parametrize("choice", [[], ["--dataset", "auto"], ["--dataset", "mnist"]],
                         ids=["default", "auto", "mnist"])
def test_dataset_auto_prefers_mnist_over_installed_fashion_mnist(tmp_path, choice):
    fake = _fake_mnist(tmp_path / "mnist")
    r = _run([str(EXAMPLES_DIR / "ch05_gradient_check.py"), *choice, "--data-dir", str(fake)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "data: mnist\n" in r.stdout


@pytest.mark.skipif(not _have_images(), reason="needs Fashion-MNIST or MNIST")
def test_dataset_fashion_mnist_chosen_even_when_mnist_is_found(tmp_path):
    try:
        datasets.find_dataset("fashion-mnist")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed")
    fake = _fake_mnist(tmp_path / "mnist")
    r = _run([str(EXAMPLES_DIR / "ch03_mnist_show.py"), "--dataset", "fashion-mnist",
              "--data-dir", str(fake)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fashion-mnist train[0]\n" in r.stdout


def test_dataset_missing_exits_with_where_it_looked(tmp_path):
    (tmp_path / "home").mkdir()
    env = {"HOME": str(tmp_path / "home"), "FASTDL_DATA": str(tmp_path / "nothing")}
    r = _run([str(EXAMPLES_DIR / "ch05_gradient_check.py"), "--dataset", "mnist",
              "--data-dir", str(tmp_path / "empty")], tmp_path, **env)
    assert r.returncode == 1
    assert "no image data found" in r.stderr and str(tmp_path / "empty") in r.stderr
    assert "Traceback" not in r.stderr


def test_book_weights_refuse_another_dataset(tmp_path):
    r = _run([str(EXAMPLES_DIR / "ch03_neuralnet_mnist.py"), "--dataset", "fashion-mnist"], tmp_path)
    assert r.returncode == 1
    assert "trained on mnist" in r.stderr and "Traceback" not in r.stderr
