"""``fastdl train`` in which rank 1 dies (SIGKILL) at its 9th training step, or hangs there
(sleeps for an hour) with ``FASTDL_TEST_HANG=1``."""
import os
import signal
import sys
import time

from fastdl import distributed, trainer

step, calls = trainer.Trainer.train_step, [0]


def train_step(self):
    calls[0] += 1
    if calls[0] == 9 and distributed.rank() == 1:
        if os.environ.get("FASTDL_TEST_HANG") == "1":
            time.sleep(3600)
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self)


trainer.Trainer.train_step = train_step
from fastdl.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
