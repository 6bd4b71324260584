"""`python -m firmware_model`: the `fwmodel` command line."""

from firmware_model.cli.entry import fwmodel

fwmodel()
