"""The `fwmodel` command line: parsing, commands and how their results read."""
