"""The Python API shaped like subprocess.run: argv lists, text, sinks, timeouts, errors."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

import rcmd
from rcmd import ConnectionClosed, ServerError, connect


def test_an_argv_list_is_quoted_for_the_shell(server):
    with connect(*server.address) as client:
        assert client.run(["echo", "a b", "$HOME", "it's"]).stdout == b"a b $HOME it's\n"
        assert client.run(("printf", "%s|", "x y")).stdout == b"x y|"
        with pytest.raises(TypeError):
            client.run([])
        with pytest.raises(TypeError):
            client.run(["echo", 3])  # type: ignore[list-item]
        assert client.run("echo still usable").stdout == b"still usable\n"


def test_after_a_server_error_the_client_is_closed_not_stuck(server):
    """It used to answer every later call with "a command is still running"."""
    client = connect(*server.address)
    with pytest.raises(ServerError, match="exceeds the maximum"):
        client.run("echo " + "x" * 2_000_000)  # a RUN over the server's frame limit
    with pytest.raises(ConnectionClosed, match="closed"):
        client.run("true")


def test_text_encoding_and_errors(server, gbk_server):
    with connect(*server.address) as client:
        result = client.run("printf 'caf\\303\\251\\n'; printf 'warn\\n' >&2", text=True)
        assert (result.stdout, result.stderr) == ("café\n", "warn\n")
        assert client.run("printf 'x'", encoding="latin-1").stdout == "x"
        with pytest.raises(UnicodeDecodeError):
            client.run("printf '\\377'", text=True)
        assert client.run("printf '\\377'", text=True, errors="replace").stdout == "\ufffd"
        assert client.run("cat", input="é", text=True).stdout == "é"
    with connect(*gbk_server.address) as client:  # the server's encoding is the default
        assert client.run("printf '\\326\\320'", text=True).stdout == "中"


def test_capture_output_false_and_sinks(server, tmp_path):
    with connect(*server.address) as client:
        result = client.run("echo out; echo err >&2", capture_output=False)
        assert (result.stdout, result.stderr, result.returncode) == (None, None, 0)
        out, err = io.StringIO(), io.StringIO()
        result = client.run("echo out; echo err >&2", stdout=out, stderr=err, text=True)
        assert (out.getvalue(), err.getvalue()) == ("out\n", "err\n")
        assert result.stdout is None
        assert result.stderr is None
        binary = io.BytesIO()
        result = client.run("echo out; echo err >&2", stdout=binary)
        assert binary.getvalue() == b"out\n"
        assert result.stderr == b"err\n"  # the other stream is still captured
        path = tmp_path / "out.bin"
        with open(path, "wb") as file:
            client.run("head -c 300000 /dev/zero", stdout=file.fileno())
        assert path.read_bytes() == bytes(300_000)


def test_a_timeout_raises_timeout_expired_with_the_partial_output(server):
    with connect(*server.address) as client:
        with pytest.raises(rcmd.TimeoutExpired) as caught:
            client.run("echo started; echo oops >&2; exec sleep 1000", timeout=0.5)
        error = caught.value
        assert isinstance(error, subprocess.TimeoutExpired)
        assert (error.stdout, error.output, error.stderr) == (b"started\n", b"started\n", b"oops\n")
        assert error.timeout == 0.5
        assert error.result.timed_out
        assert client.run("echo usable").stdout == b"usable\n"


def test_naive_and_client_modules_import_each_other_no_more():
    import ast

    source = os.path.join(os.path.dirname(rcmd.__file__), "naive.py")
    with open(source) as file:
        tree = ast.parse(file.read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "client" not in imported


def test_a_missing_shell_is_not_reported_as_a_bad_directory():
    with rcmd.BackgroundServer(shell="/no/such/shell", encoding="utf-8") as server:
        with connect(*server.address) as client:
            result = client.run("true")
    assert result.returncode == 127
    assert b"cannot run the shell /no/such/shell" in result.stderr


def test_a_pty_command_gets_the_terminal_signals_even_from_a_server_that_ignores_them():
    """A server started with ``&`` by a script ignores SIGINT and SIGQUIT; Ctrl-C and Ctrl-\\
    must still reach a program on a PTY."""
    import signal

    from rcmd.messages import PtyRequest, Stdout

    previous = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    try:
        with rcmd.BackgroundServer(encoding="utf-8") as server, connect(*server.address) as client:
            with client.stream("grep SigIgn /proc/self/status", pty=PtyRequest()) as events:
                output = b"".join(event.data for event in events if isinstance(event, Stdout))
    finally:
        signal.signal(signal.SIGQUIT, previous)
    ignored = int(output.split()[-1], 16)
    assert not ignored & (1 << (signal.SIGQUIT - 1))
    assert not ignored & (1 << (signal.SIGINT - 1))
