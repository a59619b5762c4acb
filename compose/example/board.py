#!/usr/bin/env python3
"""The simulated slave's board console: a serial line at /dev/ttyBOARD that answers commands.

A pseudo-terminal pair, raw on both ends (no byte translated or held back); /dev/ttyBOARD links
to the device end, as udev links a real board's USB serial adapter. The board reads lines and
answers each: `ping` -> `pong`, `version` -> the board's firmware line, anything else -> `?`.
It keeps the device end open itself, so clients can come and go.
"""
import os
import pty
import tty

LINK = "/dev/ttyBOARD"

board, device = pty.openpty()
tty.setraw(board)
tty.setraw(device)
if os.path.lexists(LINK):
    os.unlink(LINK)
os.symlink(os.ttyname(device), LINK)

ANSWERS = {b"ping": b"pong", b"version": b"board-fw 1.4.2"}
pending = b""
while True:
    data = os.read(board, 4096)
    if not data:
        break
    pending += data
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        os.write(board, ANSWERS.get(line.strip(), b"?") + b"\n")
