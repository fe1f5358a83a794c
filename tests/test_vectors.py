"""docs/vectors/ replayed against rcmd in both roles, and regenerated identically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from rcmd.errors import RemoteProtocolError
from rcmd.messages import (
    _BY_TYPE,
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    decode_message,
    encode_message,
)
from rcmd.protocol import Connection, Role

VECTORS = Path(__file__).resolve().parent.parent / "docs" / "vectors"
CLASSES: dict[str, type[Message]] = {
    cls.TYPE.name: cls for cls in (Hello, Run, Exit, AuthOk, Error, Stdin, Stdout, Stderr, StdinEnd, Cancel)
}
# Files and accounts (docs/PROTOCOL.md 4c, 5a): every type the decoder knows has a name here.
CLASSES.update({cls.TYPE.name: cls for cls in _BY_TYPE.values()})


def load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def build(description: dict[str, Any]) -> Message:
    """The message a vector describes, built from its fields alone (not from the frame)."""
    fields = {
        (key[:-4] if key.endswith("_hex") else key): (bytes.fromhex(value) if key.endswith("_hex") else value)
        for key, value in description.items()
        if key != "type"
    }
    for key in ("extensions", "items"):  # HELLO and COMPLETIONS keep their lists as tuples
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return CLASSES[description["type"]](**fields)


@pytest.mark.parametrize("vector", load("messages.json"), ids=lambda v: v["name"])
def test_each_message_encodes_and_decodes_as_its_vector(vector):
    message = build(vector["message"])
    frame = bytes.fromhex(vector["frame"])
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert encode_message(message) == frame[4:]
    assert decode_message(frame[4:]) == message


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
@pytest.mark.parametrize("vector", load("exchanges.json"), ids=lambda v: v["name"])
def test_each_exchange_replays_in_both_roles(vector, role):
    """Play *role*: the other side's frames go in, our own frames must come out byte for byte."""
    conn = Connection(role)
    ours = "C->S" if role is Role.CLIENT else "S->C"
    for step in vector["steps"]:
        message = build(step["message"])
        frame = bytes.fromhex(step["frame"])
        if step["direction"] == ours:
            assert conn.send(message) == frame, step
        else:
            for byte in frame:  # one byte at a time: any split must give the same message
                conn.receive_data(bytes([byte]))
            assert conn.next_event() == message, step


def test_the_split_characters_decode_whole():
    from rcmd.decoding import OutputDecoder

    for vector in load("exchanges.json"):
        hello = build(vector["steps"][0]["message"])
        assert isinstance(hello, Hello)
        decoder = OutputDecoder(hello.encoding or "utf-8")
        text = "".join(
            decoder.stdout.decode(bytes.fromhex(step["message"]["data_hex"]))
            for step in vector["steps"]
            if step["message"]["type"] == "STDOUT"
        )
        if "split" in vector["name"]:
            assert "中" in text, vector["name"]
            assert "\ufffd" not in text, vector["name"]


@pytest.mark.parametrize("vector", load("errors.json"), ids=lambda v: v["name"])
def test_each_error_vector_is_refused_with_its_reason(vector):
    conn = Connection(Role(vector["receiver"]))
    conn.send(Hello(software="rcmd 0.1.0"))
    for frame in vector["before"]:
        conn.receive_data(bytes.fromhex(frame))
        assert isinstance(conn.next_event(), Message)
    conn.receive_data(bytes.fromhex(vector["input"]))
    if vector["then_eof"]:
        conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as raised:
        conn.next_event()
    assert str(raised.value) == vector["reason"]


def test_the_committed_vectors_are_what_the_generator_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("generate_vectors", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.main(tmp_path)
    for name in ("messages.json", "exchanges.json", "errors.json"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (VECTORS / name).read_text(
            encoding="utf-8"
        ), name
