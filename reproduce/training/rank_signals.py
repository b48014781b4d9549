"""Under torchrun, one line instead of a dying rank's silence: what happens when torchrun stops a rank.

Kept free of torch (and of anything slow to import) so that `python -m reproduce` can set it up in
its first milliseconds: torchrun stops the other ranks as soon as one exits, which can be before a
rank has finished importing torch.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def launched_ranks() -> int:
    """How many ranks torchrun (or a submitit job's tasks) started for this run; 1 without them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def speaks() -> bool:
    """Whether this process prints: rank 0, or a process started without torchrun. The other ranks
    compute the same decisions and meet the same errors, so one voice is enough."""
    return int(os.environ.get("RANK", "0")) == 0


def stop_in_one_line_on_sigterm() -> None:
    """torchrun stops every rank with SIGTERM when one of them exits (crashed, killed, or failed at
    start-up): say so in one line and exit, rather than die mid-collective with a traceback.

    The line comes from a watcher thread woken through signal.set_wakeup_fd, not from the Python
    handler alone: that one only runs when the main thread is back in Python, and a rank waiting in
    init_process_group or a collective is in C++ until torchrun's SIGKILL."""
    if launched_ranks() == 1:
        return
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGTERM, lambda signum, _frame: _stopped_by_torchrun())
    signal.set_wakeup_fd(wake_write)
    threading.Thread(target=_watch_for_sigterm, args=(wake_read,), daemon=True).start()


def _watch_for_sigterm(wake_read: int) -> None:
    while True:
        woken_by = os.read(wake_read, 1)
        if not woken_by or woken_by[0] == signal.SIGTERM:
            _stopped_by_torchrun()


def _stopped_by_torchrun() -> None:
    if speaks():
        print(f"rank 0 of {launched_ranks()}: stopped by torchrun because another rank exited (its report below "
              "names it); the last epoch checkpoint is kept: rerun the same command to resume from it",
              file=sys.stderr, flush=True)
    os._exit(128 + signal.SIGTERM)  # no cleanup to wait for: checkpoints and records are written atomically
