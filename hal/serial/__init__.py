"""The serial board protocol, host side: framing and messages, the port, the pipelined
link, and the board on a serial line as a Machine (its flash, fuses, reset, clock, console)."""
