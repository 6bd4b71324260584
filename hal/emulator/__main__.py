"""`python -m hal.emulator`: serve a software machine as a board (see hal.emulator.cli)."""

import sys

from hal.emulator.cli import main

sys.exit(main())
