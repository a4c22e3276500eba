"""``python -m vtrbench`` (and ``torchrun ... -m vtrbench extract ...``): the command line."""

import sys

from vtrbench.cli import main

sys.exit(main())
