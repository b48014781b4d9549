"""`python -m reproduce ...`: see reproduce.cli."""

import sys

from reproduce.cli import main

sys.exit(main())
