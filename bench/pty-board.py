#!/usr/bin/env python3
"""The device bench's board, run as `pty-board.py`: a serial console that echoes.

Makes a pseudo-terminal pair on this machine (the bench's slave), raw on both ends so no byte is
translated or held back by a line discipline, prints the device end's path (e.g. /dev/pts/3) on
its own line, and echoes every byte that arrives on the board end back to it, as it arrives. It
keeps the device end open itself, so the pair lives while clients come and go. Runs until the
bench stops it by its PID.
"""
import os
import pty
import tty

board, device = pty.openpty()
tty.setraw(board)
tty.setraw(device)
print(os.ttyname(device), flush=True)

while True:
    # device --bytes--> board --the same bytes--> device
    data = os.read(board, 4096)
    if not data:
        break
    os.write(board, data)
