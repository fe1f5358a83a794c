"""Tab completion, sans-I/O: COMPLETE and COMPLETIONS as bytes (PROTOCOL.md 5d), their place in
the state machine, and the prompt's reading and quoting of the word being completed."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcmd.completion import Word, insertion, word_at
from rcmd.errors import LocalProtocolError, RemoteProtocolError
from rcmd.framing import encode_frame
from rcmd.messages import (
    MAX_COMPLETION_BYTES,
    MAX_COMPLETION_TEXT,
    MAX_COMPLETIONS,
    Complete,
    Completions,
    Exit,
    Hello,
    Run,
    decode_message,
    encode_message,
)
from rcmd.protocol import Connection, Phase, Role

# ---------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (Complete("my "), b'\x09{"text":"my ","kind":"path"}'),
        (Complete("pyth", "command"), b'\x09{"text":"pyth","kind":"command"}'),
        (Complete(""), b'\x09{"text":"","kind":"path"}'),
        (Completions(), b'\x14{"items":[],"truncated":false}'),
        (
            Completions(("my dir/", "my file.txt"), truncated=True),
            b'\x14{"items":["my dir/","my file.txt"],"truncated":true}',
        ),
        (Completions(("中文/",)), '\x14{"items":["中文/"],"truncated":false}'.encode()),
        (Complete("x" * MAX_COMPLETION_TEXT), None),
        (Completions(tuple(f"{n:04}" for n in range(MAX_COMPLETIONS))), None),
        (Completions(("x" * (MAX_COMPLETION_BYTES // 2),) * 2), None),  # exactly the byte limit
    ],
    ids=lambda v: type(v).__name__,
)
def test_completion_messages_round_trip(message, payload):
    encoded = encode_message(message)
    if payload is not None:
        assert encoded == payload
    assert decode_message(encoded) == message


def test_completions_items_decode_as_a_tuple_and_unknown_keys_are_ignored():
    decoded = decode_message(b'\x14{"items":["a"],"later":1}')
    assert decoded == Completions(("a",))
    assert decode_message(b'\x09{"text":"a","kind":"path","cwd":"/x"}') == Complete("a")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'\x09{"kind":"path"}', "COMPLETE lacks the required field 'text'"),
        (b'\x09{"text":"a"}', "COMPLETE lacks the required field 'kind'"),
        (b'\x09{"text":"a","kind":"user"}', "COMPLETE field 'kind' must be one of path, command"),
        (b'\x09{"text":5,"kind":"path"}', "COMPLETE field 'text' has the wrong type (int)"),
        (
            b'\x09{"text":"' + b"x" * (MAX_COMPLETION_TEXT + 1) + b'","kind":"path"}',
            "COMPLETE field 'text' is longer than 4096 characters",
        ),
        (
            b'\x09{"text":"\\ud800","kind":"path"}',
            "COMPLETE field 'text' is not Unicode text (it holds a lone surrogate)",
        ),
        (b"\x14{}", "COMPLETIONS lacks the required field 'items'"),
        (b'\x14{"items":"a"}', "COMPLETIONS field 'items' has the wrong type (str)"),
        (b'\x14{"items":[1]}', "COMPLETIONS field 'items' must be a list of strings (Unicode text)"),
        (b'\x14{"items":["\\udc80"]}', "COMPLETIONS field 'items' must be a list of strings (Unicode text)"),
        (b'\x14{"items":[],"truncated":1}', "COMPLETIONS field 'truncated' has the wrong type (int)"),
        (
            b'\x14{"items":[' + b",".join([b'"a"'] * (MAX_COMPLETIONS + 1)) + b"]}",
            "COMPLETIONS field 'items' holds more than 1000 items",
        ),
        (
            b'\x14{"items":["' + b"x" * (MAX_COMPLETION_BYTES + 1) + b'"]}',
            "COMPLETIONS field 'items' holds more than 65536 bytes",
        ),
    ],
)
def test_malformed_completion_payloads_say_exactly_what_is_wrong(payload, reason):
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(payload)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (Complete("x" * (MAX_COMPLETION_TEXT + 1)), ValueError),
        (Complete("a", "user"), ValueError),
        (Completions(("a",) * (MAX_COMPLETIONS + 1)), ValueError),
        (Completions(("x" * (MAX_COMPLETION_BYTES + 1),)), ValueError),
        (Completions(("\udc80",)), ValueError),
    ],
)
def test_we_never_send_a_completion_a_peer_must_refuse(message, error):
    with pytest.raises(error):
        encode_message(message)


# ------------------------------------------------------------------------ state machine

SERVER_HELLO = Hello(encoding="utf-8", cwd="/", extensions=("pty", "ping", "files", "complete"))


def pair(server_hello: Hello = SERVER_HELLO) -> tuple[Connection, Connection]:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.receive_data(server.send(server_hello))
    assert client.next_event() == server_hello
    server.receive_data(client.send(Hello()))
    assert server.next_event() == Hello()
    return client, server


def test_a_completion_is_a_question_and_its_answer_between_commands():
    client, server = pair()
    server.receive_data(client.send(Complete("my", "path")))
    assert server.next_event() == Complete("my", "path")
    assert client.phase is server.phase is Phase.COMPLETING
    with pytest.raises(LocalProtocolError, match="cannot send RUN while completing"):
        client.send(Run("ls"))
    client.receive_data(server.send(Completions(("my dir/",))))
    assert client.next_event() == Completions(("my dir/",))
    assert client.phase is server.phase is Phase.IDLE
    server.receive_data(client.send(Run("ls")))  # and the next command goes as usual
    assert server.next_event() == Run("ls")


def test_a_client_asks_no_completion_of_a_server_without_the_extension():
    client, _server = pair(Hello(extensions=("pty", "ping", "files")))
    with pytest.raises(LocalProtocolError, match="did not list the 'complete' extension"):
        client.send(Complete("a"))
    assert client.phase is Phase.IDLE  # nothing changed: the prompt goes on without it


@pytest.mark.parametrize("where", ["running", "completing"])
def test_complete_only_while_idle(where):
    client, server = pair()
    first = Run("sleep 9") if where == "running" else Complete("a")
    server.receive_data(client.send(first))
    server.next_event()
    with pytest.raises(LocalProtocolError, match=f"cannot send COMPLETE while {where}"):
        client.send(Complete("b"))
    server.receive_data(encode_frame(encode_message(Complete("b"))))
    with pytest.raises(RemoteProtocolError, match=f"COMPLETE is not allowed while {where}"):
        server.next_event()


def test_no_completion_before_authentication():
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    hello = Hello(auth="hmac-sha256", nonce="11" * 32, extensions=("complete",))
    client.receive_data(server.send(hello))
    client.next_event()
    server.receive_data(client.send(Hello(nonce="22" * 32, mac="33" * 32)))
    server.next_event()
    with pytest.raises(LocalProtocolError, match="cannot send COMPLETE while authenticating"):
        client.send(Complete("a"))
    server.receive_data(encode_frame(encode_message(Complete("a"))))
    with pytest.raises(RemoteProtocolError, match="COMPLETE is not allowed while authenticating"):
        server.next_event()


@pytest.mark.parametrize("phase", ["idle", "running"])
def test_completions_nobody_asked_for_are_a_protocol_error(phase):
    client, server = pair()
    if phase == "running":
        server.receive_data(client.send(Run("ls")))
        server.next_event()
    client.receive_data(encode_frame(encode_message(Completions(("a",)))))
    with pytest.raises(RemoteProtocolError, match=f"COMPLETIONS is not allowed while {phase}"):
        client.next_event()


def test_a_server_cannot_answer_a_question_with_output():
    client, server = pair()
    server.receive_data(client.send(Complete("a")))
    server.next_event()
    with pytest.raises(LocalProtocolError, match="cannot send EXIT while completing"):
        server.send(Exit(0))


# ---------------------------------------------------------------- the word being completed


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("", Word(0, "", command=True)),
        ("ec", Word(0, "ec", command=True)),
        ("  ec", Word(2, "ec", command=True)),
        ("ls ", Word(3, "")),
        ("ls sr", Word(3, "sr")),
        ("ls my\\ f", Word(3, "my f")),
        ('cat "my f', Word(4, "my f", quote='"', quoted_start=True)),
        ("cat 'my f", Word(4, "my f", quote="'", quoted_start=True)),
        ("cat 'it'\\''s", Word(4, "it's", quote="'", quoted_start=True)),
        ("cat my'\" x'y", Word(4, 'my" xy')),
        ('cat "a\\$b\\q', Word(4, "a$b\\q", quote='"', quoted_start=True)),  # \q stays two characters
        ("ls a\\", Word(3, "a", pending_escape=True)),
        ("echo a | gr", Word(9, "gr", command=True)),
        ("true;ec", Word(5, "ec", command=True)),
        ("make && ./ru", Word(8, "./ru", command=True)),
        ("(cd /tmp; ls) || mak", Word(17, "mak", command=True)),
        ("sudo ap", Word(5, "ap", command=True)),
        ("if tru", Word(3, "tru", command=True)),
        ("LANG=C FOO=1 so", Word(13, "so", command=True)),
        ("echo FOO=1 b", Word(11, "b")),  # an assignment only counts before the command
        ("ls > ou", Word(5, "ou")),
        ("sort <in", Word(6, "in")),
        ("cd ~/Do", Word(3, "~/Do")),
        ("cd '~/Do", Word(3, "~/Do", quote="'", quoted_start=True)),
        ("ls $HO", Word(3, "$HO", expands=True)),
        ('ls "$HOME/', Word(3, "$HOME/", quote='"', quoted_start=True, expands=True)),
        ("ls *.p", Word(3, "*.p", expands=True)),
        ("ls '*.p", Word(3, "*.p", quote="'", quoted_start=True)),  # quoted: a name, not a glob
    ],
)
def test_the_word_at_the_cursor_is_read_as_a_shell_splits_it(line, word):
    assert word_at(line) == word


@pytest.mark.parametrize(
    ("line", "item", "typed"),
    [
        ("ls no", "notes.txt", "tes.txt "),
        ("ls ", "src/", "src/"),  # a directory leaves the word open for the next Tab
        ("ls my", "my file.txt", "\\ file.txt "),
        ("ls my", "my dir/", "\\ dir/"),
        ('ls "my', "my file.txt", ' file.txt" '),
        ("ls 'my", "my dir/", " dir/"),
        ("ls 'it", "it's", "'\\''s' "),
        ('ls "a', 'a$b"c`d\\e', 'a\\$b\\"c\\`d\\\\e" '[1:]),
        (
            "ls a",
            "a;b&c|d(e)<f>g*h?i[j]k{l}m#n!o^p",
            "\\;b\\&c\\|d\\(e\\)\\<f\\>g\\*h\\?i\\[j\\]k\\{l\\}m\\#n\\!o\\^p ",
        ),
        ("ls ", "~notes", "\\~notes "),  # not the home of a user called notes
        ("ls a\\", "a b", " b "),  # the backslash typed already escapes the space
        ("ec", "echo", "ho "),
        ("ls x", "other", None),  # not a completion of this word
        ("ls ", "bad\nname", None),  # cannot be typed back on one line
    ],
)
def test_a_completion_is_typed_quoted_as_its_word(line, item, typed):
    assert insertion(word_at(line), item) == typed


NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    lambda name: name.strip() and "/" not in name
)


@settings(max_examples=200)
@given(name=NAMES, cut=st.integers(min_value=0, max_value=20), style=st.sampled_from(["", "'", '"']))
def test_any_name_completed_from_any_prefix_reads_back_as_itself(name, cut, style):
    """Typed so far: a prefix of *name*, quoted in one of the three ways; the completion
    added to it must make a real shell (sh -c, not shlex, which knows no \\$ in double
    quotes) read exactly *name* as the word."""
    prefix = name[:cut]
    if style == "'":
        typed = "'" + prefix.replace("'", "'\\''")
    elif style == '"':
        typed = '"' + "".join("\\" + c if c in '"\\$`' else c for c in prefix)
    else:
        typed = "".join(c if c.isalnum() else "\\" + c for c in prefix)
    line = "printf '%s\\0' " + typed
    word = word_at(line)
    assert word.literal == prefix
    completion = insertion(word, name)
    assert completion is not None
    assert completion.endswith(" ")
    words = subprocess.run(["/bin/sh", "-c", line + completion], capture_output=True, check=True).stdout
    assert words.decode() == name + "\0"
