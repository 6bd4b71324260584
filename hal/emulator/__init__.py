"""Board agents served over the serial protocol: the Python board agent on a software
machine, its UART line (pacing, noise, reboots), the pty/TCP server, launcher and command line."""
