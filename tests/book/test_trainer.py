"""Trainer: epochs, history, callbacks, stop/resume, the book's arguments."""
import numpy as np
import pytest

from fastdl.datasets import load_spiral
from fastdl.models import MultiLayerNetExtend, TwoLayerNet
from fastdl.optimizers import Adam
from fastdl.trainer import Trainer


@pytest.fixture(scope="module")
def spiral():
    return load_spiral()


def test_trains_spiral_with_history(spiral):
    (x, t), (xt, tt) = spiral
    net = TwoLayerNet(2, 30, 3, weight_init_std="he", seed=0)
    records = []
    tr = Trainer(net, x, t, xt, tt, epochs=150, mini_batch_size=30, optimizer="Adam",
                 optimizer_param={"lr": 0.01}, verbose=False, seed=1,
                 callbacks=[lambda trainer, rec: records.append(rec)])
    acc = tr.train()
    assert acc > 0.9
    assert tr.iter_per_epoch == 10 and tr.current_iter == 1500 and tr.current_epoch == 150
    assert len(tr.train_loss_list) == 1500
    assert len(tr.train_acc_list) == len(tr.test_acc_list) == len(tr.epoch_records) == 150
    assert np.mean(tr.train_loss_list[-10:]) < np.mean(tr.train_loss_list[:10])
    epochs = [r for r in records if r["event"] == "epoch"]
    iters = [r for r in records if r["event"] == "iteration"]
    assert len(epochs) == 150 and len(iters) == 1500
    assert epochs[-1]["epoch"] == 150 and epochs[-1]["test_acc"] == tr.test_acc_list[-1]
    assert set(epochs[0]) == {"event", "epoch", "iteration", "loss", "train_acc", "test_acc", "seconds"}


def test_seeded_runs_are_identical_and_resume_matches(spiral):
    (x, t), (xt, tt) = spiral

    def run(epochs, start_epoch=0, net=None, opt=None):
        net = net or MultiLayerNetExtend(2, [10], 3, use_batchnorm=True, seed=0)
        opt = opt or Adam(lr=0.01)
        tr = Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=50, optimizer=opt,
                     verbose=False, seed=3, start_epoch=start_epoch)
        tr.train()
        return net, opt, tr

    full, _, tr_full = run(4)
    again, _, _ = run(4)
    for k in full.params:
        np.testing.assert_array_equal(full.params[k], again.params[k])
    half, opt, _ = run(2)
    resumed, _, tr = run(4, start_epoch=2, net=half, opt=opt)
    assert tr.current_epoch == 4 and len(tr.train_loss_list) == 2 * tr.iter_per_epoch
    assert tr.train_loss_list == tr_full.train_loss_list[2 * tr.iter_per_epoch:]
    for k in full.params:
        np.testing.assert_array_equal(full.params[k], resumed.params[k])


def test_stop_training_from_callback(spiral):
    (x, t), (xt, tt) = spiral
    net = TwoLayerNet(2, 5, 3, seed=0)

    def stop_after_7(trainer, rec):
        if rec["event"] == "iteration" and rec["iteration"] == 7:
            trainer.stop_training = True

    tr = Trainer(net, x, t, xt, tt, epochs=5, mini_batch_size=100, verbose=False, callbacks=[stop_after_7])
    tr.train()
    assert tr.current_iter == 7 and tr.current_epoch == 2


def test_evaluate_sample_num_and_verbose_output(spiral, capsys):
    (x, t), (xt, tt) = spiral
    net = TwoLayerNet(2, 5, 3, seed=0)
    tr = Trainer(net, x, t, xt, tt, epochs=2, mini_batch_size=1000, evaluate_sample_num_per_epoch=10)
    assert tr.iter_per_epoch == 1 and tr.optimizer.lr == 0.01  # the book's SGD default
    tr.train()
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "Final Test Accuracy" in out
    assert all(a * 10 == int(a * 10) for a in tr.train_acc_list)  # measured on 10 samples


def test_bad_arguments(spiral):
    (x, t), (xt, tt) = spiral
    net = TwoLayerNet(2, 5, 3, seed=0)
    with pytest.raises(ValueError):
        Trainer(net, x, t[:-1], xt, tt)
    with pytest.raises(ValueError):
        Trainer(net, x, t, xt, tt, mini_batch_size=0)
    with pytest.raises(ValueError):
        Trainer(net, x, t, xt, tt, optimizer="rmsprpo")


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"mini_batch_size": 2.5}, TypeError, "mini_batch_size"),
    ({"mini_batch_size": "100"}, TypeError, "mini_batch_size"),
    ({"mini_batch_size": True}, TypeError, "mini_batch_size"),
    ({"mini_batch_size": -3}, ValueError, "mini_batch_size"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"evaluate_sample_num_per_epoch": 0}, ValueError, "evaluate_sample_num_per_epoch"),
    ({"evaluate_sample_num_per_epoch": -1}, ValueError, "evaluate_sample_num_per_epoch"),
    ({"evaluate_sample_num_per_epoch": 10**6}, ValueError, "evaluate_sample_num_per_epoch"),
    ({"evaluate_sample_num_per_epoch": 2.0}, TypeError, "evaluate_sample_num_per_epoch"),
])
def test_bad_arguments_refused_at_construction(spiral, kwargs, exc, name):
    """Issue 20: refused when the Trainer is made, naming the argument (not after an epoch)."""
    (x, t), (xt, tt) = spiral
    net = TwoLayerNet(2, 5, 3, seed=0)
    with pytest.raises(exc, match=name):
        Trainer(net, x, t, xt, tt, verbose=False, **kwargs)
    Trainer(net, x, t, xt, tt, verbose=False, mini_batch_size=np.int64(10),
            evaluate_sample_num_per_epoch=np.int32(len(x)))  # NumPy integers are fine
