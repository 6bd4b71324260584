"""Rules every layer follows, below all of them: the kinds of failure and the exit code each
gets, the one command-line policy every command shares, and loopback-only networking."""
