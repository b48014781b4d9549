"""`python -m reproduce ...`: see reproduce.cli."""

import sys

from reproduce.rank_signals import stop_in_one_line_on_sigterm

stop_in_one_line_on_sigterm()  # before the slow imports: under torchrun a rank may be stopped while others start

from reproduce.cli import main  # noqa: E402 - after the handler, on purpose

sys.exit(main())
