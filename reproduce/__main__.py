"""`python -m reproduce ...`: see reproduce.cli."""

import sys
import time

STARTED = time.time()  # a grid's time budget counts from here, the slow imports included

from reproduce.training.rank_signals import stop_in_one_line_on_sigterm  # noqa: E402

stop_in_one_line_on_sigterm()  # before the slow imports: under torchrun a rank may be stopped while others start

from reproduce.cli import main  # noqa: E402 - after the handler, on purpose

sys.exit(main(started=STARTED))
