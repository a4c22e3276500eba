"""``python -m vtrbench.cli``."""

import sys

from vtrbench.cli import main

sys.exit(main())
