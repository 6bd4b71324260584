"""`python -m firmware_model`: the `fwmodel` command line."""

import sys

from firmware_model.cli.fwmodel import main

sys.exit(main())
