"""`python -m reproduce run ...` as one torchrun rank, with a fault (used by tests/test_distributed.py).

torchrun ... rank_harness.py plain ARGS...             the command as it is
torchrun ... rank_harness.py die-at-start R ARGS...    rank R is SIGKILLed as it is about to join the others
torchrun ... rank_harness.py kill-at-step R N ARGS...  rank R is SIGKILLed as its SGD step N starts
torchrun ... rank_harness.py kill-node-at-step R N ARGS...  so are rank R and its torchrun, as its node fails
"""

import os
import signal
import sys

from reproduce.training.rank_signals import stop_in_one_line_on_sigterm

stop_in_one_line_on_sigterm()  # as python -m reproduce does, before the slow imports

from kill_harness import kill_at_step, kill_now  # noqa: E402 - this script's folder is on sys.path

from reproduce import cli
from reproduce.training import distributed  # noqa: E402


def kill_node():
    """What a machine's failure does to a torchrun node: its launcher and its ranks gone at once."""
    os.kill(os.getppid(), signal.SIGKILL)
    kill_now()


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    this_rank = os.environ["RANK"]
    if mode == "die-at-start":
        rank, rest = rest[0], rest[1:]
        if this_rank == rank:
            distributed.join = lambda config: kill_now()  # dies before it joins the others
    elif mode in ("kill-at-step", "kill-node-at-step"):
        rank, step, rest = rest[0], int(rest[1]), rest[2:]
        if this_rank == rank:
            kill_at_step(step, kill_node if mode == "kill-node-at-step" else kill_now)
    sys.exit(cli.main(rest))
