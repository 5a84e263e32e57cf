"""Trainer: mini-batch training with history and a progress bar (the book's common/trainer.py).

Differences from the book: each epoch visits the training set in a fresh
random order without replacement (``iter_per_epoch = max(train_size //
mini_batch_size, 1)`` batches; a last partial batch is left out so batch
norm never sees a batch of one); the recorded loss is the one of the
gradient pass (no extra forward pass); accuracies are measured at the end
of each epoch; the RMSprop name works (the book misspells it).
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from .optimizers import Optimizer, get_optimizer

__all__ = ["Trainer"]

Callback = Callable[["Trainer", dict], None]


class Trainer:
    """Train ``network`` on (x_train, t_train) and track loss and accuracies.

    network: has ``params``, ``accuracy(x, t)`` and ``loss_and_gradient(x, t)``
    (every fastdl model) or the book's ``gradient(x, t)`` and ``loss(x, t)``.
    optimizer: a name of :func:`fastdl.optimizers.get_optimizer` (with
    ``optimizer_param``) or an optimizer object.
    evaluate_sample_num_per_epoch: accuracies per epoch on the first that many
    samples of each set (None: all).
    seed: shuffling of epoch ``e`` is drawn from ``default_rng([seed, e])``,
    so a run resumed at ``start_epoch`` sees the same batches; ``start_iteration``
    batches of that epoch count as already done (a resume mid-epoch).
    callbacks: called as ``cb(trainer, record)`` after every iteration
    (``record["event"] == "iteration"``: epoch, iteration, loss, running_acc
    (batch accuracy of the epoch so far, None if unknown)) and every
    epoch (``"epoch"``: epoch, iteration, loss (epoch mean), train_acc,
    test_acc, seconds (wall time of the epoch including its evaluation)).  A callback may set ``trainer.stop_training = True``.
    verbose: one summary line per epoch (and the final test accuracy).
    progress: the running loss and batch accuracy of :meth:`train`'s epoch on
    stderr.  None (default): a tqdm bar when ``verbose`` and stderr is a
    terminal.  True: that bar on a terminal, elsewhere a plain line every ~10%
    of the epoch (at most one per 2 s; e.g. for logs).  False: none.

    distributed: None (default) trains data-parallel when the process is one of several
    MPI ranks (:mod:`fastdl.distributed`; started by ``mpirun -n N``), False never.
    Data-parallel: ``mini_batch_size`` is the *global* batch and must be divisible by the
    number of ranks; every rank draws the same epoch permutation (a seed None is drawn
    on rank 0 and broadcast), takes its contiguous share of each global batch, and the
    averaged gradients give every rank the same update as one process would make on the
    whole batch (equal to round-off).  Dropout masks are those of the one-process run
    (each rank takes its rows of the global batch's draw).  Batch normalisation keeps
    per-rank statistics: each rank normalises its shard with the shard's mean and
    variance and updates its own running statistics (rank 0's are the ones evaluated
    and saved), so a batch-norm model does not match a one-process run exactly.
    Rank 0 alone evaluates (its accuracies are broadcast) and prints.
    ``request_stop()`` stops every rank after the same iteration.

    History: ``train_loss_list`` (per iteration), ``train_acc_list`` and
    ``test_acc_list`` (per epoch), ``epoch_records`` (the epoch records).
    """

    def __init__(self, network: Any, x_train: np.ndarray, t_train: np.ndarray,
                 x_test: np.ndarray, t_test: np.ndarray, epochs: int = 20, mini_batch_size: int = 100,
                 optimizer: Union[str, Optimizer] = "SGD", optimizer_param: Optional[dict] = None,
                 evaluate_sample_num_per_epoch: Optional[int] = None, verbose: bool = True, *,
                 seed: Optional[int] = None, callbacks: Sequence[Callback] = (), start_epoch: int = 0,
                 start_iteration: int = 0, progress: Optional[bool] = None,
                 distributed: Optional[bool] = None) -> None:
        _check_int("epochs", epochs, 0)
        _check_int("mini_batch_size", mini_batch_size, 1)
        if len(x_train) != len(t_train) or len(x_train) == 0:
            raise ValueError(f"x_train and t_train must have the same non-zero length, got "
                             f"{len(x_train)} and {len(t_train)}")
        if len(x_test) != len(t_test):
            raise ValueError(f"x_test and t_test must have the same length, got {len(x_test)} and {len(t_test)}")
        if not 0 <= start_epoch <= epochs:
            raise ValueError(f"need 0 <= start_epoch <= epochs, got {start_epoch}, {epochs}")
        n_eval = evaluate_sample_num_per_epoch
        if n_eval is not None:
            _check_int("evaluate_sample_num_per_epoch", n_eval, 1)
            if n_eval > max(len(x_train), len(x_test)):
                raise ValueError(f"evaluate_sample_num_per_epoch must be None or at most the "
                                 f"larger set's {max(len(x_train), len(x_test))} samples, "
                                 f"got {n_eval}")
        self.network = network
        self.x_train, self.t_train = x_train, np.asarray(t_train)
        self.x_test, self.t_test = x_test, np.asarray(t_test)
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.verbose = verbose
        self.progress = progress
        self.seed = seed
        self.callbacks = list(callbacks)
        if isinstance(optimizer, Optimizer):
            self.optimizer = optimizer
        else:
            self.optimizer = get_optimizer(optimizer, **({"lr": 0.01} if optimizer_param is None else optimizer_param))
        self.train_size = len(x_train)
        self.iter_per_epoch = max(self.train_size // mini_batch_size, 1)
        self.max_iter = epochs * self.iter_per_epoch
        self.current_epoch = start_epoch
        if not 0 <= start_iteration < self.iter_per_epoch:
            raise ValueError(f"start_iteration must be in [0, {self.iter_per_epoch}), got {start_iteration}")
        self.current_iter = start_epoch * self.iter_per_epoch + start_iteration
        self.stop_training = False
        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.epoch_records: list[dict] = []
        self._rng = np.random.default_rng()
        self._order: Optional[np.ndarray] = None
        self._pos = 0
        self._epoch_losses: list[float] = []
        self._epoch_correct = 0
        self._epoch_seen = 0
        self._epoch_start = time.perf_counter()
        self._stop_requested = False
        self._setup_distributed(distributed)

    def _setup_distributed(self, distributed: Optional[bool]) -> None:
        from . import distributed as dist

        on = dist.is_distributed() if distributed is None else bool(distributed)
        if on and not dist.is_distributed():
            raise RuntimeError(f"distributed=True, but {dist.unavailable_reason()}")
        self.rank, self.world_size = (dist.rank(), dist.world_size()) if on else (0, 1)
        if self.world_size == 1:
            return
        bs = min(self.batch_size, self.train_size)
        if bs % self.world_size:
            raise ValueError(f"mini_batch_size {bs} (the global batch) must be divisible by "
                             f"the number of MPI ranks, {self.world_size}")
        if self.seed is None:  # every rank must draw the same permutations
            self.seed = int(dist.broadcast([np.random.SeedSequence().entropy % 2**52])[0])
        dist.broadcast_params(self.network.params)

    def request_stop(self) -> None:
        """Stop after this iteration (data-parallel: after the next one, on every rank)."""
        if self.world_size == 1:
            self.stop_training = True
        else:
            self._stop_requested = True

    # ---------------------------------------------------------------- one iteration

    def _new_epoch(self) -> None:
        rng = self._rng if self.seed is None else np.random.default_rng([self.seed, self.current_epoch])
        self._order = rng.permutation(self.train_size)
        self._pos = self.current_iter - self.current_epoch * self.iter_per_epoch
        self._epoch_losses, self._epoch_correct, self._epoch_seen = [], 0, 0
        self._epoch_start = time.perf_counter()

    def _loss_and_gradient(self, x, t):
        if hasattr(self.network, "loss_and_gradient"):
            return self.network.loss_and_gradient(x, t)
        return float(self.network.loss(x, t)), self.network.gradient(x, t)

    def train_step(self) -> float:
        """One update on the next mini-batch of the current epoch; returns its loss.

        Ends the epoch (accuracies, records, callbacks) after its last batch.
        """
        if self._order is None or self._pos >= self.iter_per_epoch:
            self._new_epoch()
        bs = min(self.batch_size, self.train_size)
        idx = self._order[self._pos * bs:(self._pos + 1) * bs]
        loss, grads, correct, seen = self._local_step(idx, bs)
        if self.world_size > 1:
            from . import distributed as dist

            dist.allreduce_gradients(grads)
            total = dist.allreduce_sum([loss, correct, seen, float(self._stop_requested)])
            loss, correct, seen = float(total[0]) / self.world_size, int(total[1]), int(total[2])
            if total[3] > 0:
                self.stop_training = True
        self.optimizer.update(self.network.params, grads)
        self._pos += 1
        self.current_iter += 1
        self.train_loss_list.append(loss)
        self._epoch_losses.append(loss)
        self._epoch_correct += correct
        self._epoch_seen += seen
        self._notify({"event": "iteration", "epoch": self.current_epoch + 1,
                      "iteration": self.current_iter, "loss": loss,
                      "running_acc": self._epoch_correct / self._epoch_seen if self._epoch_seen else None})
        if self._pos == self.iter_per_epoch:
            self._end_epoch()
        return loss

    def _local_step(self, idx: np.ndarray, bs: int):
        """Loss, gradients, correct and seen count of this rank's share of batch ``idx``."""
        lo = self.rank * (bs // self.world_size)
        if self.world_size > 1:
            idx = idx[lo:lo + bs // self.world_size]
        x_batch, t_batch = self.x_train[idx], self.t_train[idx]
        with _sharded_dropout(self.network, lo, bs, self.world_size > 1):
            loss, grads = self._loss_and_gradient(x_batch, t_batch)
        correct = seen = 0
        logits = getattr(getattr(self.network, "last_layer", None), "x", None)
        if logits is not None and len(logits) == len(idx):
            labels = t_batch if t_batch.ndim == 1 else np.argmax(t_batch, axis=1)
            correct, seen = int(np.sum(np.argmax(logits, axis=1) == labels)), len(idx)
        return loss, grads, correct, seen

    def _end_epoch(self) -> None:
        self.current_epoch += 1
        n = self.evaluate_sample_num_per_epoch
        train_acc = test_acc = float("nan")
        if self.rank == 0:
            train_acc = self.network.accuracy(self.x_train[:n], self.t_train[:n])
            if len(self.x_test):
                test_acc = self.network.accuracy(self.x_test[:n], self.t_test[:n])
        if self.world_size > 1:
            from . import distributed as dist

            train_acc, test_acc = (float(v) for v in dist.broadcast([train_acc, test_acc]))
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        record = {"event": "epoch", "epoch": self.current_epoch, "iteration": self.current_iter,
                  "loss": float(np.mean(self._epoch_losses)), "train_acc": train_acc, "test_acc": test_acc,
                  "seconds": time.perf_counter() - self._epoch_start}
        self.epoch_records.append(record)
        if self.verbose and self.rank == 0:
            tqdm.write(f"=== epoch {self.current_epoch}/{self.epochs}: loss {record['loss']:.4f}, "
                       f"train acc {train_acc:.4f}, test acc {test_acc:.4f}, {record['seconds']:.1f} s ===")
        self._notify(record)

    def _notify(self, record: dict) -> None:
        for cb in self.callbacks:
            cb(self, record)

    # ---------------------------------------------------------------- the loop

    def _position(self) -> int:
        """Batches done in the current epoch."""
        return self.current_iter - self.current_epoch * self.iter_per_epoch

    def train(self) -> float:
        """Train from ``current_epoch`` to ``epochs`` (or until ``stop_training``); return test accuracy."""
        show = self.rank == 0 and (self.progress is True or (self.progress is None and self.verbose
                                                             and sys.stderr.isatty()))
        while self.current_epoch < self.epochs and not self.stop_training:
            epoch = self.current_epoch
            bar = _EpochProgress(f"epoch {epoch + 1}/{self.epochs}", self.iter_per_epoch,
                                 self._position(), plain=self.progress is True) if show else None
            try:
                while self.current_epoch == epoch and not self.stop_training:
                    self.train_step()
                    if bar is not None and self.current_epoch == epoch:
                        acc = self._epoch_correct / self._epoch_seen if self._epoch_seen else None
                        bar.update(self._position(), float(np.mean(self._epoch_losses)), acc)
            finally:
                if bar is not None:
                    bar.close()
        test_acc = self._final_test_accuracy()
        if self.verbose and self.rank == 0:
            tqdm.write(f"=============== Final Test Accuracy ===============\ntest acc: {test_acc:.4f}")
        return test_acc

    def _final_test_accuracy(self) -> float:
        """Accuracy on the whole test set; the last epoch's when it measured exactly that."""
        if not len(self.x_test):
            return float("nan")
        n = self.evaluate_sample_num_per_epoch
        if self.test_acc_list and self._position() == 0 and (n is None or n >= len(self.x_test)):
            return self.test_acc_list[-1]
        acc = self.network.accuracy(self.x_test, self.t_test) if self.rank == 0 else float("nan")
        if self.world_size > 1:
            from . import distributed as dist

            acc = float(dist.broadcast([acc])[0])
        return acc


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@contextlib.contextmanager
def _sharded_dropout(network: Any, offset: int, global_n: int, on: bool):
    """While on: every Dropout layer of ``network`` draws its rows of the global batch's
    mask (see :class:`fastdl.distributed.ShardedRNG`)."""
    if not on:
        yield
        return
    from .distributed import ShardedRNG
    from .layers import Dropout

    layers = [lay for lay in getattr(network, "layers", {}).values() if isinstance(lay, Dropout)]
    saved = [lay.rng for lay in layers]
    for layer in layers:
        layer.rng = ShardedRNG(layer.rng, offset, global_n)
    try:
        yield
    finally:
        for layer, rng in zip(layers, saved):
            layer.rng = rng


class _EpochProgress:
    """One epoch's progress on stderr: a tqdm bar on a terminal; elsewhere, when ``plain``,
    a line every ~10% of the epoch, at most one per ``min_interval`` seconds."""

    def __init__(self, desc: str, total: int, initial: int, plain: bool,
                 min_interval: float = 2.0) -> None:
        self.desc, self.total, self.plain = desc, total, plain
        self.every = max(1, total // 10)
        self.min_interval = min_interval
        self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False,
                            dynamic_ncols=True, unit="batch", file=sys.stderr)

    def update(self, step: int, loss: float, acc: Optional[float]) -> None:
        text = f"loss {loss:.4f}" + ("" if acc is None else f" acc {acc:.4f}")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.plain and step % self.every == 0 and step < self.total:
            now = time.perf_counter()
            if now - self.last >= self.min_interval:
                self.last = now
                sys.stderr.write(f"{self.desc} {step}/{self.total} {text}\n")
                sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
