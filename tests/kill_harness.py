"""Train one run in this process and SIGKILL it at a chosen point (used by tests/test_faults.py).

python kill_harness.py CONFIG_JSON step N        killed as SGD step N starts
python kill_harness.py CONFIG_JSON checkpoint N  killed halfway through writing checkpoint N
python kill_harness.py CONFIG_JSON record        killed halfway through writing the final record
"""

import io
import json
import os
import signal
import sys

from reproduce.records import results
from reproduce.runs import runner
from reproduce.training import train


def kill_now():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_step(n, kill=kill_now):
    real_step, calls = train.train_step, [0]

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            kill()
        return real_step(*args, **kwargs)

    train.train_step = step


def kill_midway_through_write(should_kill):
    real_write = results.atomic_write

    def write(path, writer):
        data = io.BytesIO()
        writer(data)
        data = data.getvalue()
        if should_kill(path, data):
            # What a kill leaves mid-write: a half-written temporary file beside the target.
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / f".{path.name}.killed.tmp").write_bytes(data[: len(data) // 2])
            kill_now()
        real_write(path, lambda handle: handle.write(data))

    results.atomic_write = write


def nth_checkpoint(n):
    seen = [0]

    def should_kill(path, _data):
        if path.suffix == ".pt":
            seen[0] += 1
        return path.suffix == ".pt" and seen[0] == n

    return should_kill


def final_record(path, data):
    return path.suffix == ".json" and b'"status": "complete"' in data


if __name__ == "__main__":
    config, point = json.loads(sys.argv[1]), sys.argv[2]
    if point == "step":
        kill_at_step(int(sys.argv[3]))
    elif point == "checkpoint":
        kill_midway_through_write(nth_checkpoint(int(sys.argv[3])))
    else:
        kill_midway_through_write(final_record)
    runner.run(config)
    sys.exit(3)  # not killed: the test fails on this exit code
