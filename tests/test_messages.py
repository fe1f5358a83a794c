"""Message payloads: table-driven round trips and malformed input (bytes only)."""

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcmd.errors import RemoteProtocolError
from rcmd.messages import (
    MAX_JSON_DEPTH,
    MAX_JSON_TOKENS,
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    MessageType,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    decode_message,
    encode_message,
    encode_message_parts,
)

ROUND_TRIPS = [
    (Hello(), b'\x01{"protocol":1,"software":""}'),  # None fields are left out
    (Hello(auth="hmac-sha256", nonce="00" * 32), None),
    (Hello(software="rcmd 0.1.0", encoding="gbk", cwd="/srv"), None),
    (Run("ls -l"), b'\x02{"command":"ls -l","env":{},"stdin":false}'),
    (Run("echo 中文", cwd="/tmp", env={"LANG": "C"}, timeout=2.5, stdin=True), None),
    # Text goes out as UTF-8, not as \u escapes: a peer in another language reads it as it is.
    (Run("echo 中文"), '\x02{"command":"echo 中文","env":{},"stdin":false}'.encode()),
    (Error("没有"), '\x7f{"reason":"没有"}'.encode()),
    (Stdin(b"data\x00\xff"), b"\x03data\x00\xff"),
    (StdinEnd(), b"\x04"),
    (Cancel(), b"\x05"),
    (Stdout(b""), b"\x10"),
    (Stdout(b"\xd6\xd0"), b"\x10\xd6\xd0"),
    (Stderr(b"oops\n"), b"\x11oops\n"),
    (Exit(3), b'\x12{"returncode":3,"timed_out":false,"cancelled":false}'),
    (Exit(-9, signal=9, timed_out=True, cwd="/"), None),
    (Exit(-15, signal=15, cancelled=True), None),
    (Error("frame too large"), b'\x7f{"reason":"frame too large"}'),
    (AuthOk("ab" * 32), None),
]


@pytest.mark.parametrize(("message", "payload"), ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip(message, payload):
    encoded = encode_message(message)
    if payload is not None:
        assert encoded == payload
    assert encoded[0] == message.TYPE
    assert decode_message(encoded) == message


@pytest.mark.parametrize(("message", "payload"), ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_parts_are_the_type_byte_and_the_body(message, payload):
    kind, body = encode_message_parts(message)
    assert kind == bytes((message.TYPE,))
    assert kind + body == encode_message(message)


def test_a_data_body_is_passed_on_uncopied():
    data = bytes(100_000)
    assert encode_message_parts(Stdout(data))[1] is data


@given(st.binary())
def test_data_messages_carry_any_bytes(data):
    for cls in (Stdin, Stdout, Stderr):
        assert decode_message(encode_message(cls(data))) == cls(data)


@given(st.text(), st.dictionaries(st.text(), st.text(), max_size=3))
def test_run_carries_any_text_a_server_can_run(command, env):
    run = Run(command, env=env)
    if run.refusal() is None:
        assert decode_message(encode_message(run)) == run
    else:  # a NUL, a lone surrogate, an empty env name or one with '=': never sent
        with pytest.raises(ValueError, match=r"^RUN would be refused: "):
            encode_message(run)


def test_unknown_fields_are_ignored_for_forward_compatibility():
    assert decode_message(b'\x12{"returncode":0,"future":[1,2]}') == Exit(0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload: every message starts with a type byte"),
        (b"\x42", "unknown message type 0x42"),
        (b"\x00", "unknown message type 0x00"),
        (b"\x04x", "STDIN_END takes no body, got 1 bytes"),
        (b"\x05ab", "CANCEL takes no body, got 2 bytes"),
        (b"\x02not json", "RUN body is not UTF-8 JSON: ..."),
        (b"\x02\xff\xfe", "RUN body is not UTF-8 JSON: ..."),
        (b"\x02[1]", "RUN body must be a JSON object, got list"),
        (b"\x12null", "EXIT body must be a JSON object, got NoneType"),
        (b"\x02{}", "RUN lacks the required field 'command'"),
        (b'\x02{"command":5}', "RUN field 'command' has the wrong type (int)"),
        (b'\x02{"command":"x","stdin":1}', "RUN field 'stdin' has the wrong type (int)"),
        (b'\x02{"command":"x","env":[]}', "RUN field 'env' has the wrong type (list)"),
        (b'\x02{"command":"x","env":{"A":1}}', "RUN field 'env' must map strings to strings"),
        (b'\x02{"command":"x","timeout":-1}', "RUN field 'timeout' must be a positive number of seconds"),
        (b'\x02{"command":"x","timeout":0}', "RUN field 'timeout' must be a positive number of seconds"),
        (b'\x02{"command":"x","timeout":-0.0}', "RUN field 'timeout' must be a positive number of seconds"),
        (b'\x02{"command":"x","timeout":NaN}', "RUN body: NaN is not JSON"),
        (b'\x02{"command":"x","timeout":Infinity}', "RUN body: Infinity is not JSON"),
        (b'\x02{"command":"x","timeout":true}', "RUN field 'timeout' has the wrong type (bool)"),
        (b'\x12{"returncode":true}', "EXIT field 'returncode' has the wrong type (bool)"),
        (b'\x12{"returncode":1.5}', "EXIT field 'returncode' has the wrong type (float)"),
        (b'\x12{"returncode":0,"signal":"9"}', "EXIT field 'signal' has the wrong type (str)"),
        (b'\x01{"protocol":"1"}', "HELLO field 'protocol' has the wrong type (str)"),
        (b'\x01{"software":"x"}', "HELLO lacks the required field 'protocol'"),
        (b'\x7f{"reason":null}', "ERROR field 'reason' has the wrong type (NoneType)"),
        (b"\x06{}", "AUTH_OK lacks the required field 'mac'"),
        # Integers: a HELLO's version is 0 to 2**31-1, an EXIT's status and signal 32-bit.
        (b'\x01{"protocol":-1}', "HELLO field 'protocol' is out of range (0 to 2**31-1)"),
        (b'\x01{"protocol":2147483648}', "HELLO field 'protocol' is out of range (0 to 2**31-1)"),
        (b'\x12{"returncode":2147483648}', "EXIT field 'returncode' is out of range (a 32-bit integer)"),
        (b'\x12{"returncode":-2147483649}', "EXIT field 'returncode' is out of range (a 32-bit integer)"),
        (
            b'\x12{"returncode":0,"signal":2147483648}',
            "EXIT field 'signal' is out of range (a 32-bit integer)",
        ),
        # A lone surrogate (json decodes the escape to one) is not text, outside a RUN.
        (
            b'\x01{"protocol":1,"software":"rcmd \\udcff"}',
            "HELLO field 'software' is not Unicode text (it holds a lone surrogate)",
        ),
        (b'\x06{"mac":"\\ud800"}', "AUTH_OK field 'mac' is not Unicode text (it holds a lone surrogate)"),
        # Whatever the key, known or not (an unknown key's value was once let through).
        (
            b'\x02{"command":"true","later":"\\ud800"}',
            "RUN field 'later' is not Unicode text (it holds a lone surrogate)",
        ),
        (
            b'\x12{"returncode":0,"x":[{"y":"\\udc00"}]}',
            "EXIT field 'x' is not Unicode text (it holds a lone surrogate)",
        ),
        # A number too large for a float reads as inf: refused wherever it is, with its first
        # 20 characters.
        (b'\x02{"command":"x","timeout":1e400}', "RUN body: the number 1e400 is not a finite number"),
        (
            b'\x02{"command":"x","later":[-1.000000000000000000000e400]}',
            "RUN body: the number -1.00000000000000000 is not a finite number",
        ),
        (b'\x02{"command":"x","later":-Infinity}', "RUN body: -Infinity is not JSON"),
    ],
)
def test_malformed_payloads_say_what_is_wrong(payload, reason):
    """The reason goes back to the peer in an ERROR: it is part of the contract, word for word
    (a reason ending in "..." goes on with the JSON parser's own words)."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(payload)
    if reason.endswith("..."):
        assert str(info.value).startswith(reason[:-3])
    else:
        assert str(info.value) == reason


@pytest.mark.parametrize("timeout", [1e-9, 0.5, 1, 2.5, 86_400])
def test_any_positive_finite_timeout_is_accepted(timeout):
    assert decode_message(b'\x02{"command":"x","timeout":%r}' % timeout) == Run("x", timeout=timeout)


@given(st.binary(min_size=1))
def test_garbage_decodes_or_raises_remote_protocol_error(payload):
    try:
        message = decode_message(payload)
    except RemoteProtocolError as exc:
        assert str(exc)
    else:
        assert MessageType(payload[0]) == message.TYPE


def plain_id(value: object) -> str:
    """A test id in ASCII without backslashes: pytest escapes a backslash or a non-ASCII
    character in an id, and mutmut cannot always hand such an id back to pytest (its fork
    server gets "not found", and every mutant those tests cover was counted as killed)."""
    return ascii(value).replace("\\", "/")


# ------------------------------------------------------------------- nesting depth, exactly


def lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def dicts(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("nest", [lists, dicts], ids=["lists", "objects"])
def test_nesting_is_bounded_at_exactly_max_json_depth(nest):
    """The body object is level 1: 31 more levels pass, 32 more are one too many."""
    assert MAX_JSON_DEPTH == 32
    fine = b'\x02{"command":"x","later":' + nest(MAX_JSON_DEPTH - 1) + b"}"
    assert decode_message(fine) == Run("x")
    deep = b'\x02{"command":"x","later":' + nest(MAX_JSON_DEPTH) + b"}"
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(deep)
    assert str(info.value) == "RUN body is nested deeper than 32 levels"


@pytest.mark.parametrize("depth", [8000, 100_000])
def test_nesting_too_deep_for_the_parser_gets_the_same_reason(depth):
    """8,000 levels, within the token bound: the JSON parser itself gives up (RecursionError
    where its limit is under that); 100,000, over the bound, are not parsed. The peer is
    told the same as at 33 levels."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(b'\x01{"protocol":1,"later":' + lists(depth) + b"}")
    assert str(info.value) == "HELLO body is nested deeper than 32 levels"


def spaced_lists(depth: int) -> bytes:
    return b"[ " * depth + b"]" * depth


@pytest.mark.parametrize("nest", [lists, spaced_lists, dicts], ids=["lists", "spaced lists", "objects"])
def test_a_body_over_the_token_bound_is_too_deep_at_exactly_max_json_depth(nest):
    """A body too large to parse is not parsed: the brackets opened in a row (blanks and keys
    between them aside) tell whether it is too deep, at the same level as a parsed body's."""
    padding = b',"pad":[' + b"0," * MAX_JSON_TOKENS + b"0]}"
    fine = b'\x02{"command":"x","later":' + nest(MAX_JSON_DEPTH - 1) + padding
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(fine)
    assert str(info.value) == f"RUN body holds more than {MAX_JSON_TOKENS} JSON tokens"
    deep = b'\x02{"command":"x","later":' + nest(MAX_JSON_DEPTH) + padding
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(deep)
    assert str(info.value) == "RUN body is nested deeper than 32 levels"


def test_an_unknown_key_that_is_not_text_is_refused_whatever_its_value():
    """The key itself holds the lone surrogate; its value, a list, is walked too."""
    for value in (b"[1]", b'["a",{"b":[]}]', b"[]"):
        with pytest.raises(RemoteProtocolError) as info:
            decode_message(b'\x02{"command":"true","\\ud800":' + value + b"}")
        assert str(info.value) == f"RUN field {chr(0xD800)!r} is not Unicode text (it holds a lone surrogate)"


@pytest.mark.parametrize(
    "later",
    [
        b"[" + b",".join([b"[]"] * 40) + b"]",  # wide, two levels: 41 brackets
        b"[" + b",".join([b'{"k":{}}'] * 40) + b"]",  # three levels of objects and lists
        b'"' + b"[{" * 40 + b'"',  # brackets inside a string are not nesting
    ],
    ids=["wide lists", "wide objects", "in a string"],
)
def test_many_brackets_are_not_deep_nesting(later):
    """Counting brackets only picks the bodies to walk: a wide body passes."""
    assert decode_message(b'\x02{"command":"x","later":' + later + b"}") == Run("x")


# --------------------------------------------------------------- integer ranges, both ways

BOUNDARY_VALUES = [
    Hello(protocol=0),
    Hello(protocol=2**31 - 1),
    Exit(2**31 - 1),
    Exit(-(2**31)),
    Exit(-(2**31), signal=2**31 - 1),
    Exit(0, signal=-(2**31)),
]


@pytest.mark.parametrize("message", BOUNDARY_VALUES, ids=plain_id)
def test_integers_at_the_edges_of_their_range_pass(message):
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    ("message", "error", "reason"),
    [
        (Hello(protocol=-1), ValueError, "HELLO field 'protocol' is out of range (0 to 2**31-1)"),
        (Hello(protocol=2**31), ValueError, "HELLO field 'protocol' is out of range (0 to 2**31-1)"),
        (Exit(2**31), ValueError, "EXIT field 'returncode' is out of range (a 32-bit integer)"),
        (Exit(-(2**31) - 1), ValueError, "EXIT field 'returncode' is out of range (a 32-bit integer)"),
        (Exit(0, signal=2**31), ValueError, "EXIT field 'signal' is out of range (a 32-bit integer)"),
        (Run("x", timeout=float("nan")), ValueError, "RUN field 'timeout' is not a finite number"),
        (Run("x", timeout=float("inf")), ValueError, "RUN field 'timeout' is not a finite number"),
        (Run("x", timeout=0.0), ValueError, "RUN field 'timeout' must be a positive number of seconds"),
        (AuthOk("\udcff"), ValueError, "AUTH_OK field 'mac' is not Unicode text (it holds a lone surrogate)"),
        (
            Hello(nonce="\ud800"),
            ValueError,
            "HELLO field 'nonce' is not Unicode text (it holds a lone surrogate)",
        ),
        (Error(5), TypeError, "ERROR field 'reason' has the wrong type (int)"),  # type: ignore[arg-type]
        (Hello(encoding=5), TypeError, "HELLO field 'encoding' has the wrong type (int)"),  # type: ignore[arg-type]
        (Exit(True), TypeError, "EXIT field 'returncode' has the wrong type (bool)"),
        (Run("x", stdin=1), TypeError, "RUN field 'stdin' has the wrong type (int)"),  # type: ignore[arg-type]
        (Run("a\0b"), ValueError, "RUN would be refused: NUL character in 'command'"),
    ],
    ids=plain_id,
)
def test_we_never_send_what_a_peer_must_refuse(message, error, reason):
    """encode_message() checks against the same schema, with the same words."""
    with pytest.raises(error) as info:
        encode_message(message)
    assert str(info.value) == reason


# ------------------------------------------------------------- text that is shown to people


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (Error("bad \udcff"), '\x7f{"reason":"bad \ufffd"}'.encode()),
        (
            Exit(0, cwd=os.fsdecode(b"/srv/caf\xe9")),
            '\x12{"returncode":0,"timed_out":false,"cancelled":false,"cwd":"/srv/caf\ufffd"}'.encode(),
        ),
        (Hello(software="r\ud800\udfffd"), '\x01{"protocol":1,"software":"r\ufffd\ufffdd"}'.encode()),
        (Hello(cwd="/\udce9/\udce9"), '\x01{"protocol":1,"software":"","cwd":"/\ufffd/\ufffd"}'.encode()),
    ],
    ids=plain_id,
)
def test_display_text_goes_out_with_each_lone_surrogate_as_u_fffd(message, payload):
    assert encode_message(message) == payload


# ----------------------------------------------------------- RUNs a server refuses, exactly

REFUSALS = [
    (Run("echo a\0b"), "NUL character in 'command'"),
    (Run("echo \udcff"), "lone surrogate in 'command'"),
    (Run("a\0\udcff"), "NUL character in 'command'"),  # NUL is looked for first
    (Run("true", cwd="/tmp\0x"), "NUL character in 'cwd'"),
    (Run("true", cwd="/tmp/\ud800"), "lone surrogate in 'cwd'"),
    (Run("\0", cwd="\0"), "NUL character in 'command'"),  # the command first
    (Run("true", env={"": "1"}), "empty env name"),
    (Run("true", env={"A=B": "1"}), "'=' in env name 'A=B'"),
    (Run("true", env={"=": "1"}), "'=' in env name '='"),
    (Run("true", env={"X\0": "a"}), "NUL character in env name 'X\\x00'"),
    (Run("true", env={"\udfff": "1"}), "lone surrogate in env name '\\udfff'"),
    (Run("true", env={"X": "a\0"}), "NUL character in env value 'X'"),
    (Run("true", env={"A": "\ud800"}), "lone surrogate in env value 'A'"),
    (Run("true", env={"A": "1", "B=": "2"}), "'=' in env name 'B='"),
    # Runnable: '=' in a value, text that is not ASCII, no cwd, no env.
    (Run("true", env={"A": "1=2"}), None),
    (Run("echo 中文", cwd="/srv/中", env={"名": "值"}), None),
    (Run(""), None),
]


@pytest.mark.parametrize(("run", "reason"), REFUSALS, ids=plain_id)
def test_the_reason_a_run_is_refused(run, reason):
    """The reason goes back in STDERR ``rcmd: refused: REASON``: it is the contract."""
    assert run.refusal() == reason
    if reason is not None:
        with pytest.raises(ValueError, match=f"^RUN would be refused: {re.escape(reason)}$"):
            encode_message(run)
    else:
        assert decode_message(encode_message(run)) == run


# ------------------------------------------------ the terminal and keepalive extensions

from rcmd.messages import Ping, Pong, PtyRequest, WindowChange  # noqa: E402


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (
            Run("vi", stdin=True, pty=PtyRequest("xterm-256color", 24, 80)),
            b'\x02{"command":"vi","env":{},"stdin":true,"pty":{"term":"xterm-256color","rows":24,"cols":80}}',
        ),
        (WindowChange(50, 132), b'\x07{"rows":50,"cols":132}'),
        (Ping(), b"\x08"),
        (Pong(), b"\x13"),
        (Hello(extensions=("pty", "ping"), idle_timeout=3600.0), None),
    ],
    ids=lambda v: type(v).__name__,
)
def test_extension_round_trips(message, payload):
    encoded = encode_message(message)
    if payload is not None:
        assert encoded == payload
    assert decode_message(encoded) == message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'\x02{"command":"vi","pty":{"term":"","rows":24,"cols":80}}', "pty.term"),
        (b'\x02{"command":"vi","pty":{"term":"x\\u001b[2J","rows":24,"cols":80}}', "pty.term"),
        (b'\x02{"command":"vi","pty":{"term":"' + b"x" * 65 + b'"}}', "pty.term"),
        (b'\x02{"command":"vi","pty":{"term":"xterm","rows":-1,"cols":80}}', "'rows'"),
        (b'\x02{"command":"vi","pty":{"term":"xterm","rows":24,"cols":65536}}', "'cols'"),
        (b'\x02{"command":"vi","pty":{"term":"xterm","rows":true,"cols":80}}', "'rows'"),
        (b'\x02{"command":"vi","pty":"xterm"}', "'pty' has the wrong type"),
        (b'\x07{"rows":24}', "lacks the required field 'cols'"),
        (b'\x07{"rows":24,"cols":1.5}', "wrong type"),
        (b'\x07{"rows":70000,"cols":80}', "'rows'"),
        (b"\x08x", "PING takes no body"),
        (b'\x01{"protocol":1,"extensions":["pty",3]}', "list of strings"),
    ],
)
def test_malformed_extension_payloads_say_what_is_wrong(payload, reason):
    with pytest.raises(RemoteProtocolError, match=reason.replace("[", r"\[").replace("(", r"\(")):
        decode_message(payload)


PTY_REASONS = [
    (b'\x07{"rows":65536,"cols":80}', "WINDOW_CHANGE field 'rows' must be an integer from 0 to 65535"),
    (b'\x07{"rows":-1,"cols":80}', "WINDOW_CHANGE field 'rows' must be an integer from 0 to 65535"),
    (b'\x07{"rows":24,"cols":65536}', "WINDOW_CHANGE field 'cols' must be an integer from 0 to 65535"),
    (
        b'\x02{"command":"vi","pty":{"term":"","rows":24,"cols":80}}',
        "RUN field 'pty' has a bad term: pty.term must be a printable name of 1 to 64 characters",
    ),
    (
        b'\x02{"command":"vi","pty":{"term":"' + b"x" * 65 + b'"}}',
        "RUN field 'pty' has a bad term: pty.term must be a printable name of 1 to 64 characters",
    ),
    (
        b'\x02{"command":"vi","pty":{"term":5}}',
        "RUN field 'pty' has a bad term: pty.term must be a printable name of 1 to 64 characters",
    ),
    (
        b'\x02{"command":"vi","pty":{"term":"x\\u0007"}}',
        "RUN field 'pty' has a bad term: pty.term must be a printable name of 1 to 64 characters",
    ),
    (
        b'\x02{"command":"vi","pty":{"rows":65536}}',
        "RUN field 'pty' 'rows' must be an integer from 0 to 65535",
    ),
    (b'\x02{"command":"vi","pty":{"rows":-1}}', "RUN field 'pty' 'rows' must be an integer from 0 to 65535"),
    (
        b'\x02{"command":"vi","pty":{"rows":true}}',
        "RUN field 'pty' 'rows' must be an integer from 0 to 65535",
    ),
    (b'\x02{"command":"vi","pty":{"cols":1.5}}', "RUN field 'pty' 'cols' must be an integer from 0 to 65535"),
    (
        b'\x02{"command":"vi","pty":{"cols":"80"}}',
        "RUN field 'pty' 'cols' must be an integer from 0 to 65535",
    ),
    (
        b'\x02{"command":"vi","pty":{"cols":65536}}',
        "RUN field 'pty' 'cols' must be an integer from 0 to 65535",
    ),
    (b'\x01{"protocol":1,"extensions":["pty",3]}', "HELLO field 'extensions' must be a list of strings"),
    (b'\x01{"protocol":1,"extensions":[null]}', "HELLO field 'extensions' must be a list of strings"),
]


@pytest.mark.parametrize(("payload", "reason"), PTY_REASONS)
def test_terminal_fields_say_exactly_what_is_wrong(payload, reason):
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(payload)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'\x07{"rows":0,"cols":65535}', WindowChange(0, 65535)),
        (b'\x07{"rows":65535,"cols":0}', WindowChange(65535, 0)),
        (b'\x02{"command":"vi","pty":{}}', Run("vi", pty=PtyRequest("xterm", 24, 80))),
        (b'\x02{"command":"vi","pty":{"rows":65535,"cols":0}}', Run("vi", pty=PtyRequest("xterm", 65535, 0))),
        (
            b'\x02{"command":"vi","pty":{"term":"' + b"x" * 64 + b'"}}',
            Run("vi", pty=PtyRequest("x" * 64, 24, 80)),
        ),
        (b'\x01{"protocol":1,"extensions":[]}', Hello(extensions=())),
        (b'\x01{"protocol":1,"extensions":["pty","ping"]}', Hello(extensions=("pty", "ping"))),
    ],
)
def test_terminal_fields_at_their_edges_pass(payload, message):
    assert decode_message(payload) == message


def test_an_unknown_key_holding_text_or_an_escaped_pair_is_ignored():
    """The check for lone surrogates in unknown keys lets real text through: an escaped
    pair (an emoji) and an escaped backslash before "ud800" are both text."""
    body = b'\x02{"command":"true","later":["\\ud83d\\ude00","\\\\ud800"],"\\ud83d\\ude00":1}'
    assert decode_message(body) == Run("true")


def test_a_repeated_key_takes_its_last_value():
    """§3: a sender MUST NOT repeat a key; a receiver that gets one uses the last value."""
    assert decode_message(b'\x02{"command":"false","command":"true"}') == Run("true")


def test_we_never_send_a_repeated_key():
    import json

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    sent = [
        Run("true", cwd="/", env={"A": "1"}, timeout=1.0, stdin=True),
        Hello(software="x", encoding="utf-8", cwd="/", extensions=("pty",)),
        Exit(0, cwd="/"),
    ]
    for message in sent:
        json.loads(encode_message(message)[1:], object_pairs_hook=unique)


# ------------------------------------------------------------- HELLO max_frame_size (§2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'\x01{"protocol":1,"max_frame_size":256}', Hello(max_frame_size=256)),
        (b'\x01{"protocol":1,"max_frame_size":1048576}', Hello(max_frame_size=1 << 20)),
        (b'\x01{"protocol":1,"max_frame_size":4294967295}', Hello(max_frame_size=2**32 - 1)),
        (b'\x01{"protocol":1,"max_frame_size":null}', Hello()),
        (b'\x01{"protocol":1}', Hello()),
    ],
)
def test_max_frame_size_at_its_edges_passes(payload, message):
    assert decode_message(payload) == message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"-1", "HELLO field 'max_frame_size' is out of range (256 to 2**32-1 bytes)"),
        (b"0", "HELLO field 'max_frame_size' is out of range (256 to 2**32-1 bytes)"),
        (b"255", "HELLO field 'max_frame_size' is out of range (256 to 2**32-1 bytes)"),
        (b"4294967296", "HELLO field 'max_frame_size' is out of range (256 to 2**32-1 bytes)"),
        (b"1" + b"0" * 40, "HELLO field 'max_frame_size' is out of range (256 to 2**32-1 bytes)"),
        (b'"65536"', "HELLO field 'max_frame_size' has the wrong type (str)"),
        (b"65536.0", "HELLO field 'max_frame_size' has the wrong type (float)"),
        (b"true", "HELLO field 'max_frame_size' has the wrong type (bool)"),
        (b"[65536]", "HELLO field 'max_frame_size' has the wrong type (list)"),
    ],
    ids=lambda v: v.decode()[:12] if isinstance(v, bytes) else None,
)
def test_a_malformed_max_frame_size_is_refused_with_its_reason(value, reason):
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(b'\x01{"protocol":1,"max_frame_size":' + value + b"}")
    assert str(info.value) == reason


@pytest.mark.parametrize("value", [0, 255, 2**32, -1])
def test_we_never_announce_a_max_frame_size_out_of_range(value):
    with pytest.raises(ValueError, match="'max_frame_size' is out of range"):
        encode_message(Hello(max_frame_size=value))


@pytest.mark.parametrize(
    ("announced", "unannounced", "chunk"),
    [
        (None, 64 * 1024, 64 * 1024),  # an older or third-party server: as before
        (None, 256 * 1024, 256 * 1024),
        (256, 64 * 1024, 255),  # the type byte takes one of the limit's bytes
        (4096, 64 * 1024, 4095),
        (65536, 64 * 1024, 65535),
        (256 * 1024 + 1, 64 * 1024, 256 * 1024),
        (1 << 20, 64 * 1024, 256 * 1024),  # never more than 256 KiB, as STDOUT
        (2**32 - 1, 256 * 1024, 256 * 1024),
    ],
)
def test_data_chunks_fit_the_announced_limit(announced, unannounced, chunk):
    from rcmd.messages import data_chunk_size

    assert data_chunk_size(Hello(max_frame_size=announced), unannounced) == chunk
    assert data_chunk_size(None, unannounced) == unannounced
