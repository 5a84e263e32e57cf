"""``fastdl train`` in which, at its 9th training step, rank 1 dies (SIGKILL), or hangs
(``FASTDL_TEST_ACTION=hang``: sleeps for an hour), or rank 0 alone gets a Ctrl-C
(``FASTDL_TEST_ACTION=sigint``)."""
import os
import signal
import sys
import time

from fastdl import distributed, trainer

step, calls = trainer.Trainer.train_step, [0]
ACTION = os.environ.get("FASTDL_TEST_ACTION", "kill")


def train_step(self):
    calls[0] += 1
    if calls[0] == 9 and ACTION == "sigint" and distributed.rank() == 0:
        os.kill(os.getpid(), signal.SIGINT)
    elif calls[0] == 9 and distributed.rank() == 1:
        if ACTION == "hang":
            time.sleep(3600)
        elif ACTION == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
    return step(self)


trainer.Trainer.train_step = train_step
from fastdl.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
