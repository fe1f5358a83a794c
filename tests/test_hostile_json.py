"""JSON bodies built to be costly, not wrong: a frame full of tiny values makes a parser build
hundreds of thousands of objects on the server's event loop while every other client waits.
A body holds at most MAX_JSON_TOKENS tokens, counted before parsing; these tests pin what is
counted (strings, opening brackets, commas and colons outside strings) and that the server
answers such a body with a reason, like any other garbage.
"""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcmd import messages
from rcmd.errors import RemoteProtocolError
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import (
    MAX_JSON_DEPTH,
    MAX_JSON_TOKENS,
    Error,
    FsResult,
    Hello,
    Run,
    decode_message,
    encode_message,
)


def tokens(value: object) -> int:
    """The tokens of *value* as JSON, counted from its structure (the reference)."""
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        inside = sum(1 + tokens(v) for v in value.values())  # each key is a string
        return 1 + inside + len(value) + max(len(value) - 1, 0)  # "{", colons, commas
    if isinstance(value, list):
        return 1 + sum(map(tokens, value)) + max(len(value) - 1, 0)  # "[", commas
    return 0  # numbers, true, false, null


def run_body(later: object, command: str = "x") -> bytes:
    return b"\x02" + json.dumps({"command": command, "later": later}).encode()


def test_a_body_at_the_limit_passes_and_one_token_more_is_refused():
    base = tokens({"command": "x", "later": []})
    fits = [0] * (MAX_JSON_TOKENS - base + 1)  # numbers are no tokens, the commas between are
    assert tokens({"command": "x", "later": fits}) == MAX_JSON_TOKENS
    assert decode_message(run_body(fits)) == Run("x")
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(run_body([*fits, 0]))
    assert str(info.value) == f"RUN body holds more than {MAX_JSON_TOKENS} JSON tokens"


@pytest.mark.parametrize(
    "command",
    ['[,:{"' * 200_000, "\\" * 500_001, '\\"' * 300_000, '"' * 400_000, "]" * 500_000],
    ids=["marks", "backslashes", "backslash-quotes", "quotes", "closing brackets"],
)
def test_marks_inside_strings_are_not_tokens(command):
    """A 1 MiB command made of brackets, commas, quotes and escapes is one string: it passes
    (the first count overcounts; the second, with the strings taken out, is exact)."""
    assert decode_message(run_body([], command)) == Run(command)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{},:"\\ab\n'),
        lambda children: (
            st.lists(children, max_size=6)
            | st.dictionaries(st.text(alphabet='[]{},:"\\ab', max_size=3), children, max_size=6)
        ),
        max_leaves=60,
    ),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_the_count_is_exact_for_any_json(later, ascii_only):
    """With the bound set just below or at a body's true count, it is refused or passes:
    whatever its strings hold, escaped or not."""
    body = json.dumps({"command": "x", "later": later}, ensure_ascii=ascii_only).encode()
    count = tokens({"command": "x", "later": later})
    original = messages.MAX_JSON_TOKENS
    try:
        messages.MAX_JSON_TOKENS = count
        assert not messages._too_many_tokens(body)
        messages.MAX_JSON_TOKENS = count - 1
        assert messages._too_many_tokens(body)
    finally:
        messages.MAX_JSON_TOKENS = original


@pytest.mark.parametrize("count", [MAX_JSON_TOKENS, MAX_JSON_TOKENS + 1])
def test_strings_alone_are_a_token_each(count):
    """Nothing but strings (not JSON: no commas between them): each is one token, so the
    bound is passed at one string more, and the body is refused for what it is."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(b"\x02" + b'"a"' * count)
    over = str(info.value) == f"RUN body holds more than {MAX_JSON_TOKENS} JSON tokens"
    assert over is (count > MAX_JSON_TOKENS)


@pytest.mark.parametrize("extra", [0, 1])
def test_a_quote_left_open_is_one_token(extra):
    """An odd number of quotes: the last one opens no string and counts as one mark. Here
    the strings hold a comma each, so the first count (every mark) is far over the bound."""
    strings = (MAX_JSON_TOKENS - 8) // 2 + extra
    body = b'{"command":"x","later":[' + b'",",' * (strings - 1) + b'","]"'
    assert messages._too_many_tokens(body) is bool(extra)  # 2 * strings + 8 tokens
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(b"\x02" + body)
    over = str(info.value) == f"RUN body holds more than {MAX_JSON_TOKENS} JSON tokens"
    assert over is bool(extra)


def test_a_bomb_too_large_to_parse_still_gets_the_depth_reason():
    """Nested deeper than MAX_JSON_DEPTH and over the token bound: the depth is the reason, as
    for a bomb small enough to parse."""
    bomb = "[" * 200_000 + "]" * 200_000
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(b'\x02{"command":"x","later":' + bomb.encode() + b"}")
    assert str(info.value) == f"RUN body is nested deeper than {MAX_JSON_DEPTH} levels"


def test_an_ls_answer_is_not_bound():
    """FS_RESULT goes to a client (an ``ls`` of a large directory): it is not counted."""
    entries = [{"name": f"f{n}", "type": "file", "size": n} for n in range(2000)]
    payload = encode_message(FsResult(cwd="/", entries=entries))
    assert tokens(json.loads(payload[1:])) > MAX_JSON_TOKENS
    assert decode_message(payload) == FsResult(cwd="/", entries=entries)


def test_a_run_with_many_env_variables_is_still_refused_by_name():
    """The RUN refusal checks every env name and value at once; a bad one is still named."""
    env = {f"V{n}": "x" for n in range(1000)}
    assert Run("true", env=env).refusal() is None
    assert Run("true", env={**env, "V500=": "x"}).refusal() == "'=' in env name 'V500='"
    assert Run("true", env={**env, "V9": "a\0b"}).refusal() == "NUL character in env value 'V9'"
    assert Run("true", env={**env, "": "x"}).refusal() == "empty env name"


def test_the_server_answers_a_costly_body_with_the_reason(server):
    """300,000 empty lists in a 1 MiB RUN: ERROR with the reason, then the close."""
    payload = b'\x02{"command":"true","later":[' + b"[]," * 300_000 + b"[]]}"
    with socket.create_connection(server.address, timeout=30) as sock:
        sock.sendall(encode_frame(encode_message(Hello())) + encode_frame(payload))
        framer = LengthPrefixFramer()
        received = []
        while (frame := framer.next_frame()) is not CLOSED:
            if frame is NEED_DATA:
                framer.receive_data(sock.recv(65536))
            else:
                assert isinstance(frame, bytes)
                received.append(decode_message(frame))
    assert isinstance(received[0], Hello)
    assert received[1:] == [Error(f"RUN body holds more than {MAX_JSON_TOKENS} JSON tokens")]
