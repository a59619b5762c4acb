"""Example hardware tests, written as a lab writes them: plain files, devices and commands.

They know nothing of splitbrain. Run against a slave through splitbrain, /slave is the slave's
root, /slave/dev/ttyBOARD its board console and `hostname` on PATH runs on the slave.
EXPECTED_HOSTNAME names the slave (default slave-1). One test fails on purpose when the slave
has /etc/example-fail (or EXAMPLE_FAIL=1 is set), to check that a failure reaches whoever
started the run.
"""
import os
import platform
import socket
import subprocess
import time

import pytest

SLAVE_NAME = os.environ.get("EXPECTED_HOSTNAME", "slave-1")
BOARD = "/slave/dev/ttyBOARD"


def test_slave_hostname_file():
    with open("/slave/etc/hostname") as f:
        assert f.read().strip() == SLAVE_NAME


def test_hostname_command_runs_on_the_slave():
    out = subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == SLAVE_NAME


def test_own_hostname_is_the_slaves():
    assert socket.gethostname() == SLAVE_NAME
    assert platform.node() == SLAVE_NAME
    assert os.uname().nodename == SLAVE_NAME


def test_written_file_lands_on_the_slave():
    path = "/slave/tmp/written-by-test.txt"
    with open(path, "w") as f:
        f.write("hello from the master\n")
    # Read back through the slave's own cat, not through the mount.
    out = subprocess.run(["cat", path.removeprefix("/slave")], capture_output=True, text=True, check=True).stdout
    assert out == "hello from the master\n"


def test_board_console_answers():
    fd = os.open(BOARD, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"ping\nversion\n")
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"\n") < 2 and time.monotonic() < deadline:
            got += os.read(fd, 256)
        assert got == b"pong\nboard-fw 1.4.2\n"
    finally:
        os.close(fd)


def test_board_log_is_the_slaves():
    with open("/slave/var/log/board/console.log") as f:
        assert "boot ok" in f.read()


FAIL_ASKED = os.environ.get("EXAMPLE_FAIL") == "1" or os.path.exists("/slave/etc/example-fail")


@pytest.mark.skipif(not FAIL_ASKED, reason="the slave has no /etc/example-fail")
def test_fails_on_purpose():
    assert os.path.exists("/slave/no/such/file"), "failing on purpose (asked by the slave or EXAMPLE_FAIL=1)"
