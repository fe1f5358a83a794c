"""rcmd.errors: what each exception carries and says, without a server.

The end-to-end tests raise these through real connections; here the data they carry is
pinned down with values alone, so `make mutate` can check errors.py in seconds.
"""

import pytest

from rcmd.client import CompletedCommand
from rcmd.errors import (
    CommandError,
    FrameTooLarge,
    ProtocolError,
    RcmdError,
    RemoteProtocolError,
    ServerError,
)


def test_server_error_carries_the_reason():
    error = ServerError("no such directory")
    assert error.reason == "no such directory"
    assert str(error) == "server error: no such directory"
    assert isinstance(error, RcmdError)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (CompletedCommand("false", 1, b"out", b"err"), "command 'false' exited with status 1"),
        (
            CompletedCommand("sleep 9", -9, b"out", b"err", signal=9, timed_out=True),
            "command 'sleep 9' timed out (killed by SIGKILL)",
        ),
    ],
)
def test_command_error_carries_the_whole_result(result, message):
    error = CommandError(result)
    assert error.result is result
    assert (error.command, error.returncode, error.stdout, error.stderr) == (
        result.command,
        result.returncode,
        b"out",
        b"err",
    )
    assert str(error) == message


def test_frame_too_large_is_the_peers_fault_and_carries_both_sizes():
    error = FrameTooLarge(2000, 1024)
    assert (error.size, error.max_frame_size) == (2000, 1024)
    assert isinstance(error, RemoteProtocolError)
    assert isinstance(error, ProtocolError)
    assert str(error) == (
        "frame of 2000 bytes exceeds the maximum of 1024 bytes "
        "(is the peer speaking another protocol, e.g. naive framing?)"
    )


def test_local_write_error_carries_the_os_error():
    import errno

    from rcmd.errors import LocalWriteError

    error = LocalWriteError(OSError(errno.ENOSPC, "No space left on device"))
    assert (error.errno, error.strerror) == (errno.ENOSPC, "No space left on device")
    assert str(error) == "write error: No space left on device"
    assert isinstance(error, RcmdError)
    bare = LocalWriteError(OSError("the disk went away"))  # no errno: its text stands in
    assert (bare.errno, bare.strerror, str(bare)) == (
        None,
        "the disk went away",
        "write error: the disk went away",
    )
