"""Bad input gets the answer the spec promises (docs/PROTOCOL.md sections 3, 5 and 7).

Protocol garbage (not JSON, wrong types, NaN/Infinity/1e400, JSON nested too deeply) gets an
ERROR with the reason, then the close. A well-formed RUN that cannot be run as given (a NUL,
an env name with ``=``, a lone surrogate, a name the server's file system cannot encode) is
refused: STDERR ``rcmd: refused: ...`` and EXIT 126, and the connection goes on. Each case
runs against a real server, whose log must hold no traceback. Then the sans-I/O core under
hypothesis, the client's own checks, the ``cd`` grammar, and a server started in a directory
whose name is not UTF-8.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from _mutserver import Peer
from hypothesis import given, settings
from hypothesis import strategies as st

from rcmd import connect
from rcmd.errors import RemoteProtocolError
from rcmd.messages import (
    MAX_JSON_DEPTH,
    REFUSED,
    AuthOk,
    Error,
    Exit,
    Hello,
    Message,
    MessageType,
    Run,
    Stderr,
    Stdout,
    decode_message,
    encode_message,
)
from rcmd.server.cd import parse_cd


@pytest.fixture(scope="module")
def target(server_factory):
    """A server of this module's own, so its log shows only what these tests caused."""
    return server_factory("--encoding", "utf-8")


SERVERS = ("target", "latin_server", "odd_dir_server")


@pytest.fixture(autouse=True)
def no_traceback(request):
    """Whatever a test sent, the server logged no traceback (a case it did not foresee)."""
    servers = [request.getfixturevalue(name) for name in SERVERS if name in request.fixturenames]
    already = [len(server.log()) for server in servers]
    yield
    for server, start in zip(servers, already, strict=True):
        log = server.log()[start:]
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def raw(target):
    clients: list[Peer] = []

    def open_client(*, hello: bool = True) -> Peer:
        clients.append(Peer(target.address, hello=hello, timeout=30))
        assert isinstance(clients[-1].hello, Hello)
        return clients[-1]

    yield open_client
    for client in clients:
        client.close()


def the_error(messages: list[Message]) -> str:
    """The reason of the one message the server sent: an ERROR."""
    assert [type(m) for m in messages] == [Error], messages
    assert isinstance(messages[0], Error)
    return messages[0].reason


def run_payload(body: str) -> bytes:
    """A RUN payload with *body* as JSON text (escapes such as \\ud800 stay escapes)."""
    return bytes((MessageType.RUN,)) + body.encode("ascii")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------ protocol garbage: ERROR and close

GARBAGE = {
    "timeout 1e400 (inf)": ('{"command":"true","timeout":1e400}', "not a finite number"),
    "timeout NaN": ('{"command":"true","timeout":NaN}', "NaN is not JSON"),
    "timeout Infinity": ('{"command":"true","timeout":Infinity}', "Infinity is not JSON"),
    "timeout -Infinity": ('{"command":"true","timeout":-Infinity}', "-Infinity is not JSON"),
    "timeout 0": ('{"command":"true","timeout":0}', "'timeout' must be a positive number"),
    "NaN in an unknown field": ('{"command":"true","later":[NaN]}', "NaN is not JSON"),
    "1e400 in an unknown field": ('{"command":"true","later":{"x":-1e400}}', "not a finite number"),
    "nested 100000 deep": (f'{{"command":"true","later":{nested(100_000)}}}', "nested deeper than"),
    "nested just too deep": (
        f'{{"command":"true","later":{nested(MAX_JSON_DEPTH)}}}',
        f"nested deeper than {MAX_JSON_DEPTH} levels",
    ),
    "command not a string": ('{"command":["ls"]}', "field 'command' has the wrong type (list)"),
    "env not an object": ('{"command":"true","env":["A=1"]}', "field 'env' has the wrong type (list)"),
    "env value not a string": ('{"command":"true","env":{"A":1}}', "'env' must map strings to strings"),
    "cwd a number": ('{"command":"true","cwd":7}', "field 'cwd' has the wrong type (int)"),
    "stdin a number": ('{"command":"true","stdin":1}', "field 'stdin' has the wrong type (int)"),
    "not JSON": ("{command: true}", "not UTF-8 JSON"),
    "not an object": ('"true"', "must be a JSON object"),
}


@pytest.mark.parametrize(("body", "reason"), GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_gets_an_error_with_the_reason_then_the_close(raw, body, reason):
    client = raw()
    client.send_payload(run_payload(body))
    assert reason in the_error(client.reply())
    assert client.receive() is None  # closed


def test_nesting_at_the_limit_is_fine(raw):
    client = raw()
    client.send_payload(run_payload(f'{{"command":"echo ok","later":{nested(MAX_JSON_DEPTH - 1)}}}'))
    assert [type(m) for m in client.reply()] == [Stdout, Exit]


def test_a_json_bomb_before_authentication_gets_an_error(raw):
    client = raw(hello=False)  # the HELLO itself is the bomb, within the 8 KiB handshake frame
    client.send_payload(b"\x01" + f'{{"protocol":1,"later":{nested(4000)}}}'.encode())
    assert "nested deeper than" in the_error(client.reply())


def test_a_frame_too_large_in_the_handshake_gets_no_advice_about_command_lines(raw):
    """Before the handshake the peer may not speak rcmd at all: the reason says so, and
    only after it does the server suggest stdin for a long command line."""
    client = raw(hello=False)
    client.sock.sendall(b"\x00\x00\x24\x00")  # 9,216 bytes announced, over the 8 KiB limit
    reason = the_error(client.reply())
    assert "exceeds the maximum of 8192 bytes" in reason
    assert "command line" not in reason
    assert "another protocol" in reason


def test_a_lone_surrogate_outside_a_run_is_garbage(raw):
    client = raw(hello=False)
    client.send_payload(b'\x01{"protocol":1,"software":"rcmd \\udcff"}')
    assert "HELLO field 'software' is not Unicode text" in the_error(client.reply())


# ---------------------------------------- refused RUNs: STDERR and EXIT 126, and it goes on

REFUSALS = {
    "NUL in command": ('{"command":"echo a\\u0000b"}', "NUL character in 'command'"),
    "NUL in cwd": ('{"command":"true","cwd":"/tmp\\u0000x"}', "NUL character in 'cwd'"),
    "NUL in env value": ('{"command":"true","env":{"X":"a\\u0000"}}', "NUL character in env value 'X'"),
    "NUL in env name": ('{"command":"true","env":{"X\\u0000":"a"}}', "NUL character in env name 'X\\x00'"),
    "= in env name": ('{"command":"true","env":{"A=B":"1"}}', "'=' in env name 'A=B'"),
    "empty env name": ('{"command":"true","env":{"":"1"}}', "empty env name"),
    "lone surrogate in command": ('{"command":"echo \\ud800"}', "lone surrogate in 'command'"),
    "escaped byte in command": ('{"command":"echo \\udcff"}', "lone surrogate in 'command'"),
    "lone surrogate in cwd": ('{"command":"true","cwd":"/tmp/\\udcff"}', "lone surrogate in 'cwd'"),
    "lone surrogate in env name": ('{"command":"true","env":{"\\udfff":"1"}}', "lone surrogate in env name"),
    "lone surrogate in env value": (
        '{"command":"true","env":{"A":"\\ud800"}}',
        "lone surrogate in env value 'A'",
    ),
    "cd into a lone surrogate": ('{"command":"cd \\udcff"}', "lone surrogate in 'command'"),
}


@pytest.mark.parametrize(("body", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_run_that_cannot_be_run_is_refused_and_the_connection_goes_on(raw, body, reason):
    client = raw()
    client.send_payload(run_payload(body))
    refused = client.reply()
    assert [type(m) for m in refused] == [Stderr, Exit], refused
    assert refused[0].data.decode().startswith("rcmd: refused: ")
    assert reason in refused[0].data.decode()
    assert refused[1].returncode == REFUSED == 126
    client.send(Run("echo ok"))
    assert client.reply() == [Stdout(b"ok\n"), Exit(0, cwd=client.hello.cwd)]


CANNOT_START = {
    "missing cwd": ({"cwd": "/nonexistent/rcmd"}, b"No such file or directory"),
    "cwd a file": ({"cwd": "/etc/passwd"}, b"Not a directory"),
    "cwd too long": ({"cwd": "x" * 5000}, b"File name too long"),
    "command over 128 KiB": ({"command": "echo " + "a" * 200_000}, b"Argument list too long"),
    "env value over 128 KiB": ({"env": {"A": "b" * 200_000}}, b"Argument list too long"),
}


@pytest.mark.parametrize(("fields", "reason"), CANNOT_START.values(), ids=CANNOT_START.keys())
def test_a_command_that_cannot_start_still_gets_127_and_it_goes_on(raw, fields, reason):
    client = raw()
    client.send(Run(**{"command": "true", **fields}))
    stderr, exit = client.reply()
    assert isinstance(stderr, Stderr)
    assert stderr.data.startswith(b"rcmd: cannot run command in ")
    assert reason in stderr.data
    assert exit == Exit(127, cwd=client.hello.cwd)
    client.send(Run("echo ok"))
    assert client.reply() == [Stdout(b"ok\n"), Exit(0, cwd=client.hello.cwd)]


# ------------------------------------------------------------ the client checks before sending

CLIENT_REFUSALS = {
    "NUL in command": ({"command": "a\0b"}, "NUL character in 'command'"),
    "NUL in cwd": ({"command": "true", "cwd": "/\0"}, "NUL character in 'cwd'"),
    "= in env name": ({"command": "true", "env": {"A=B": "1"}}, "'=' in env name 'A=B'"),
    "empty env name": ({"command": "true", "env": {"": "1"}}, "empty env name"),
    "lone surrogate": ({"command": "echo \udcff"}, "lone surrogate in 'command'"),
    "timeout NaN": ({"command": "true", "timeout": float("nan")}, "'timeout' is not a finite number"),
    "timeout inf": ({"command": "true", "timeout": float("inf")}, "'timeout' is not a finite number"),
    "timeout negative": ({"command": "true", "timeout": -1.0}, "'timeout' must be a positive number"),
}


@pytest.mark.parametrize(("arguments", "reason"), CLIENT_REFUSALS.values(), ids=CLIENT_REFUSALS.keys())
def test_the_client_refuses_locally_and_sends_nothing(target, arguments, reason):
    log_start = len(target.log())
    with connect(*target.address) as client:
        with pytest.raises(ValueError, match="^RUN .*" + reason.replace("(", r"\(")):
            client.run(**arguments)
        assert client.run("echo ok").stdout == b"ok\n"  # nothing went out: the connection is fine
    assert "refused" not in target.log()[log_start:]  # the server never saw them


# ------------------------------------------------------------------ the sans-I/O core, at large

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
FIELDS = {
    MessageType.HELLO: ["protocol", "software", "encoding", "cwd", "auth", "nonce", "mac"],
    MessageType.RUN: ["command", "cwd", "env", "timeout", "stdin"],
    MessageType.EXIT: ["returncode", "signal", "timed_out", "cancelled", "cwd"],
    MessageType.AUTH_OK: ["mac"],
    MessageType.ERROR: ["reason"],
}


@st.composite
def json_bodies(draw):
    """A message type and a JSON object: each known field absent, or any JSON value, plus
    perhaps an unknown field and NaN/Infinity text spliced in."""
    kind = draw(st.sampled_from(sorted(FIELDS)))
    body = {name: draw(JSON_VALUES) for name in FIELDS[kind] if draw(st.booleans())}
    if draw(st.booleans()):
        body[draw(st.text(max_size=5))] = draw(JSON_VALUES)
    text = json.dumps(body)
    if draw(st.booleans()) and text != "{}":
        text = (
            text[:-1]
            + ',"x":'
            + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "[[[[1]]]]"]))
            + "}"
        )
    return kind, text.encode()


@settings(max_examples=500, deadline=None)  # 2000 took over 2 minutes on a loaded 2-core machine
@given(json_bodies())
def test_any_json_body_is_a_message_or_a_remote_protocol_error(kind_and_body):
    kind, body = kind_and_body
    try:
        message = decode_message(bytes((kind,)) + body)
    except RemoteProtocolError:
        return
    assert kind == message.TYPE
    if isinstance(message, Run):
        refusal = message.refusal()  # never raises: a reason, or None
        if refusal is None:
            assert decode_message(encode_message(message)) == message  # and it can be sent on
        else:
            with pytest.raises(ValueError, match=r"^RUN "):
                encode_message(message)
    else:
        assert decode_message(encode_message(message)) == message


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(FIELDS)), st.binary(max_size=64))
def test_any_body_bytes_are_a_message_or_a_remote_protocol_error(kind, body):
    try:
        decode_message(bytes((kind,)) + body)
    except RemoteProtocolError:
        pass


def test_a_cwd_that_is_not_text_is_sent_for_display():
    """A server's cwd may hold bytes that are not UTF-8 (os.fsdecode makes them lone
    surrogates); HELLO and EXIT carry it with each such byte shown as U+FFFD."""
    cwd = os.fsdecode(b"/srv/caf\xe9")
    assert decode_message(encode_message(Exit(0, cwd=cwd))) == Exit(0, cwd="/srv/caf\ufffd")
    assert decode_message(encode_message(Hello(cwd=cwd))).cwd == "/srv/caf\ufffd"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "message",
    [AuthOk("\udcff"), Hello(nonce="\ud800"), Exit(2**40), Exit(0, signal=-(2**40)), Hello(protocol=-1)],
    ids=repr,
)
def test_we_never_send_what_we_would_refuse_to_receive(message):
    with pytest.raises(ValueError, match=r"field '\w+' (is out of range|is not Unicode text)"):
        encode_message(message)


def test_a_reason_that_is_not_text_is_sent_for_display():
    assert decode_message(encode_message(Error("bad \udcff"))) == Error("bad \ufffd")


# ---------------------------------------------------------------------------- the cd grammar

CD_LINES = {
    # the builtin: `cd`, or `cd` and one word, blanks around
    "cd": "",
    "  cd\t ": "",
    "cd /tmp": "/tmp",
    "\tcd   /tmp  ": "/tmp",
    "cd -": "-",
    "cd ..": "..",
    "cd a.b-c_d/e,f+g@h%i=j:k": "a.b-c_d/e,f+g@h%i=j:k",
    "cd 中文/目录": "中文/目录",
    "cd 'with space'": "with space",
    "cd 'a;b|c&d$e`f\"g*h'": 'a;b|c&d$e`f"g*h',
    "cd '~'": "~",  # quoted: not expanded
    "cd '-'": "-",
    "cd ~": os.path.expanduser("~"),
    "cd ~/x": os.path.join(os.path.expanduser("~"), "x"),
    # the shell's: anything else
    "cd a b": None,
    "cd a;ls": None,
    "cd a && make": None,
    "cd $HOME": None,
    "cd `pwd`": None,
    "cd $(pwd)": None,
    "cd *": None,
    "cd a?": None,
    "cd [ab]": None,
    "cd {a,b}": None,
    'cd "a"': None,
    "cd a\\ b": None,
    "cd 'a'b": None,
    "cd 'a": None,
    "cd ''": None,
    "cd 'a'\"b\"": None,
    "cd #x": None,
    "cd a#b": None,
    "cd -P": None,
    "cd -- x": None,
    "cd > x": None,
    "cd\nls": None,
    "cd x\n": None,
    "cd\x01x": None,
    "cd \x01": None,
    "cdx": None,
    "cd/tmp": None,
    "ls": None,
    "": None,
    "echo cd": None,
    "CD x": None,
}


@pytest.mark.parametrize(("line", "expected"), CD_LINES.items(), ids=repr)
def test_the_cd_grammar(line, expected):
    assert parse_cd(line) == expected


@given(st.text())
def test_parse_cd_takes_any_text(line):
    target = parse_cd(line)
    assert target is None or isinstance(target, str)


# ----------------------------------------------- the server's file system encoding, its cwd


@pytest.fixture(scope="module")
def latin_server(server_factory):
    """A server whose file system encoding is Latin-1: it cannot name a path in Chinese."""
    server = server_factory(
        "--encoding",
        "latin-1",
        env={"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LANG": "C"},
    )
    with connect(*server.address) as client:
        encoding = client.run(f"{sys.executable} -c 'import sys; print(sys.getfilesystemencoding())'")
    if encoding.stdout.strip() not in (b"ascii", b"latin-1", b"iso8859-1"):
        pytest.skip(f"this Python's file system encoding in the C locale is {encoding.stdout!r}")
    return server


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"command": "cd 中文"}, "'command' cannot be encoded in the server's file system encoding"),
        ({"command": "true", "cwd": "中文"}, "'cwd' cannot be encoded in the server's file system encoding"),
        ({"command": "echo 中文"}, "'command' cannot be encoded in the server's file system encoding"),
        (
            {"command": "true", "env": {"A": "中文"}},
            "env cannot be encoded in the server's file system encoding",
        ),
    ],
    ids=["cd", "cwd", "command", "env"],
)
def test_names_the_server_cannot_encode_are_refused(latin_server, arguments, reason):
    with connect(*latin_server.address) as client:
        result = client.run(**arguments)
        assert result.returncode == REFUSED
        assert result.stderr.decode().startswith(f"rcmd: refused: {reason} (")
        assert client.run("echo ok").stdout == b"ok\n"


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory) -> bytes:
    """A directory whose name is Latin-1, not UTF-8 (paths are bytes on POSIX)."""
    path = os.fsencode(tmp_path_factory.mktemp("cwd")) + b"/caf\xe9"
    os.mkdir(path)
    os.mkdir(path + b"/sub")
    return path


@pytest.fixture(scope="module")
def odd_dir_server(server_factory, odd_dir):
    here = os.getcwd()
    os.chdir(odd_dir)  # the server starts where we are
    try:
        return server_factory("--encoding", "utf-8")
    finally:
        os.chdir(here)


def test_a_server_started_in_a_directory_that_is_not_utf8_works(odd_dir_server, odd_dir):
    with connect(*odd_dir_server.address) as client:
        shown = odd_dir.decode("utf-8", "replace")
        assert client.cwd == shown  # HELLO: shown with U+FFFD
        assert client.run("pwd").stdout == odd_dir + b"\n"  # but the commands run in it
        cd = client.run("cd sub")
        assert (cd.returncode, client.cwd) == (0, shown + "/sub")
        assert client.run("pwd").stdout == odd_dir + b"/sub\n"
        back = client.run("cd -")
        assert (back.returncode, back.stdout) == (0, odd_dir + b"\n")  # the real bytes
        assert client.run("echo ok", cwd="sub").stdout == b"ok\n"


def test_a_cd_into_a_name_that_is_not_utf8(server, tmp_path):
    """The shell can reach it (a glob); the builtin cd cannot name it, and says so."""
    os.mkdir(os.fsencode(tmp_path) + b"/caf\xe9")
    with connect(*server.address) as client:
        assert client.run(f"cd {tmp_path}").returncode == 0
        assert client.run("cd caf*; pwd").stdout == os.fsencode(tmp_path) + b"/caf\xe9\n"
        assert client.run("cd 'caf\ufffd'").returncode == 1
        assert Path(client.cwd) == tmp_path
