"""`python -m firmware_model`: the `fwmodel` command line."""

import sys

from firmware_model.cli import main

sys.exit(main())
