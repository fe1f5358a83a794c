"""The file-transfer and account messages (0x20 to 0x31), bytes only: every field's exact
payload, each range checked at both of its edges, and each refusal word for word, on the way
in (RemoteProtocolError) and on the way out (ValueError, TypeError)."""

import re

import pytest

from rcmd.errors import RcmdError, RemoteFileError, RemoteProtocolError, TransferError
from rcmd.messages import (
    FS_OPS,
    MAX_BLOCKS,
    MAX_FILE_SIZE,
    AuthChallenge,
    AuthProof,
    FileData,
    FileDone,
    FileEnd,
    FileError,
    Fs,
    FsResult,
    Get,
    GetReady,
    MessageType,
    Put,
    PutFrom,
    PutReady,
    decode_message,
    encode_message,
)

SHA = "0123456789abcdef" * 4
SHA_UPPER = SHA.upper()


def plain_id(value: object) -> str:
    """A test id without backslashes (mutmut cannot hand one with them back to pytest)."""
    return repr(value).replace("\\", "/")[:80]


ROUND_TRIPS = [
    (Put("a.txt"), b'\x20{"path":"a.txt","resume":true}'),
    (
        Put("a", size=3, mode=0o644, mtime=1.5, resume=False),
        b'\x20{"path":"a","size":3,"mode":420,"mtime":1.5,"resume":false}',
    ),
    (Get("a"), b'\x21{"path":"a","partial":0,"blocks":[]}'),
    (
        Get("a", partial=5, block_size=4, blocks=[SHA, SHA]),
        f'\x21{{"path":"a","partial":5,"block_size":4,"blocks":["{SHA}","{SHA}"]}}'.encode(),
    ),
    (PutReady(), b'\x22{"partial":0,"blocks":[]}'),
    (
        PutReady(partial=1, block_size=1, blocks=[SHA]),
        f'\x22{{"partial":1,"block_size":1,"blocks":["{SHA}"]}}'.encode(),
    ),
    (PutFrom(7), b'\x23{"offset":7}'),
    (GetReady(9), b'\x24{"size":9,"offset":0}'),
    (GetReady(9, offset=2, mode=0o755, mtime=0.0), b'\x24{"size":9,"offset":2,"mode":493,"mtime":0.0}'),
    (FileData(b"\x00\xff"), b"\x25\x00\xff"),
    (FileEnd(3, SHA), f'\x26{{"size":3,"sha256":"{SHA}"}}'.encode()),
    (FileEnd(3, SHA, error="changed"), f'\x26{{"size":3,"sha256":"{SHA}","error":"changed"}}'.encode()),
    (FileDone(3, SHA), f'\x27{{"size":3,"sha256":"{SHA}","resumed_from":0}}'.encode()),
    (FileDone(3, SHA, resumed_from=2), f'\x27{{"size":3,"sha256":"{SHA}","resumed_from":2}}'.encode()),
    (FileError("no such file"), b'\x28{"reason":"no such file","kept":0}'),
    (FileError("quota", kept=10), b'\x28{"reason":"quota","kept":10}'),
    (Fs("pwd"), b'\x29{"op":"pwd"}'),
    (Fs("ls", "d"), b'\x29{"op":"ls","path":"d"}'),
    (FsResult(), b"\x2a{}"),
    (
        FsResult(cwd="/", entries=[{"name": "a", "size": 1}], used=0, quota=MAX_FILE_SIZE),
        b'\x2a{"cwd":"/","entries":[{"name":"a","size":1}],"used":0,"quota":9007199254740991}',
    ),
    (FsResult(entries=[], truncated=True), b'\x2a{"entries":[],"truncated":true}'),
    (AuthChallenge("00" * 8, 1), b'\x30{"salt":"0000000000000000","iterations":1}'),
    (AuthProof(SHA), f'\x31{{"proof":"{SHA}"}}'.encode()),
]


@pytest.mark.parametrize(("message", "payload"), ROUND_TRIPS, ids=plain_id)
def test_file_message_round_trips(message, payload):
    assert encode_message(message) == payload
    assert decode_message(payload) == message


def test_the_type_bytes_are_those_of_the_spec():
    assert [(t.name, t.value) for t in MessageType if 0x20 <= t.value <= 0x31] == [
        ("PUT", 0x20),
        ("GET", 0x21),
        ("PUT_READY", 0x22),
        ("PUT_FROM", 0x23),
        ("GET_READY", 0x24),
        ("FILE_DATA", 0x25),
        ("FILE_END", 0x26),
        ("FILE_DONE", 0x27),
        ("FILE_ERROR", 0x28),
        ("FS", 0x29),
        ("FS_RESULT", 0x2A),
        ("AUTH_CHALLENGE", 0x30),
        ("AUTH_PROOF", 0x31),
    ]


# ------------------------------------------------------------ each range at both of its edges

MAX = MAX_FILE_SIZE
EDGES_THAT_PASS = [
    Put("a", size=0),
    Put("a", size=MAX),
    Put("a", mode=0),
    Put("a", mode=0o7777),
    Put("a", mtime=-1e300),
    Get("a", partial=MAX, block_size=1),
    Get("a", block_size=MAX),
    Get("a", blocks=[SHA] * MAX_BLOCKS),
    Get("a", blocks=[SHA_UPPER]),
    PutReady(partial=MAX, block_size=MAX, blocks=[]),
    PutFrom(0),
    PutFrom(MAX),
    GetReady(MAX, offset=MAX, mode=0o7777),
    GetReady(0, mode=0),
    FileEnd(0, SHA_UPPER),
    FileDone(MAX, SHA, resumed_from=MAX),
    FileError("x", kept=MAX),
    *[Fs(op) for op in FS_OPS],
    FsResult(entries=[]),
    FsResult(entries=[{"name": ""}, {"name": "b", "type": "dir"}]),
    FsResult(used=MAX, quota=0),
    AuthChallenge("aB" * 8, 2**31 - 1),
    AuthChallenge("ff" * 64, 1),
    AuthProof(SHA_UPPER),
]


@pytest.mark.parametrize("message", EDGES_THAT_PASS, ids=plain_id)
def test_values_at_the_edges_of_their_range_pass(message):
    assert decode_message(encode_message(message)) == message


SIZE = "is out of range (0 to 2**53-1)"
BLOCK_SIZE = "is out of range (1 to 2**53-1)"
MODE = "is out of range (permission bits, 0 to 0o7777)"
HASH = "must be 64 hex digits (a SHA-256)"
HASHES = "must be a list of SHA-256s (64 hex digits each)"
HEX = "must be 8 to 64 bytes in hex"
ITERATIONS = "is out of range (1 to 2**31-1)"
ENTRIES = "must be a list of objects, each with a string 'name'"
OPS = "must be one of pwd, cd, ls, stat, mkdir, rm, rmdir, df"

OUT_OF_RANGE = [
    (Put("a", size=-1), f"PUT field 'size' {SIZE}"),
    (Put("a", size=MAX + 1), f"PUT field 'size' {SIZE}"),
    (Put("a", mode=-1), f"PUT field 'mode' {MODE}"),
    (Put("a", mode=0o10000), f"PUT field 'mode' {MODE}"),
    (Get("a", partial=-1), f"GET field 'partial' {SIZE}"),
    (Get("a", partial=MAX + 1), f"GET field 'partial' {SIZE}"),
    (Get("a", block_size=0), f"GET field 'block_size' {BLOCK_SIZE}"),
    (Get("a", block_size=-1), f"GET field 'block_size' {BLOCK_SIZE}"),
    (Get("a", block_size=MAX + 1), f"GET field 'block_size' {BLOCK_SIZE}"),
    (Get("a", blocks=[SHA] * (MAX_BLOCKS + 1)), "GET field 'blocks' holds more than 1024 hashes"),
    (Get("a", blocks=[SHA[:-1]]), f"GET field 'blocks' {HASHES}"),
    (Get("a", blocks=[SHA + "0"]), f"GET field 'blocks' {HASHES}"),
    (Get("a", blocks=[SHA, "g" * 64]), f"GET field 'blocks' {HASHES}"),
    (Get("a", blocks=[5]), f"GET field 'blocks' {HASHES}"),  # type: ignore[list-item]
    (PutReady(partial=-1), f"PUT_READY field 'partial' {SIZE}"),
    (PutReady(block_size=0), f"PUT_READY field 'block_size' {BLOCK_SIZE}"),
    (PutReady(blocks=["x"]), f"PUT_READY field 'blocks' {HASHES}"),
    (PutFrom(-1), f"PUT_FROM field 'offset' {SIZE}"),
    (PutFrom(MAX + 1), f"PUT_FROM field 'offset' {SIZE}"),
    (GetReady(-1), f"GET_READY field 'size' {SIZE}"),
    (GetReady(0, offset=MAX + 1), f"GET_READY field 'offset' {SIZE}"),
    (GetReady(0, mode=0o10000), f"GET_READY field 'mode' {MODE}"),
    (FileEnd(-1, SHA), f"FILE_END field 'size' {SIZE}"),
    (FileEnd(0, SHA[:-1]), f"FILE_END field 'sha256' {HASH}"),
    (FileEnd(0, SHA + "a"), f"FILE_END field 'sha256' {HASH}"),
    (FileEnd(0, "z" * 64), f"FILE_END field 'sha256' {HASH}"),
    (FileDone(0, SHA, resumed_from=-1), f"FILE_DONE field 'resumed_from' {SIZE}"),
    (FileDone(0, ""), f"FILE_DONE field 'sha256' {HASH}"),
    (FileError("x", kept=-1), f"FILE_ERROR field 'kept' {SIZE}"),
    (FileError("x", kept=MAX + 1), f"FILE_ERROR field 'kept' {SIZE}"),
    (Fs("ls "), f"FS field 'op' {OPS}"),
    (Fs("LS"), f"FS field 'op' {OPS}"),
    (Fs(""), f"FS field 'op' {OPS}"),
    (FsResult(used=-1), f"FS_RESULT field 'used' {SIZE}"),
    (FsResult(quota=MAX + 1), f"FS_RESULT field 'quota' {SIZE}"),
    (FsResult(entries=[{"size": 1}]), f"FS_RESULT field 'entries' {ENTRIES}"),
    (FsResult(entries=[{"name": 1}]), f"FS_RESULT field 'entries' {ENTRIES}"),
    (FsResult(entries=[{"name": "a"}, ["name"]]), f"FS_RESULT field 'entries' {ENTRIES}"),  # type: ignore[list-item]
    (AuthChallenge("00" * 7, 1), f"AUTH_CHALLENGE field 'salt' {HEX}"),
    (AuthChallenge("00" * 65, 1), f"AUTH_CHALLENGE field 'salt' {HEX}"),
    (AuthChallenge("0" * 17, 1), f"AUTH_CHALLENGE field 'salt' {HEX}"),
    (AuthChallenge("0g" * 8, 1), f"AUTH_CHALLENGE field 'salt' {HEX}"),
    (AuthChallenge("00" * 8, 0), f"AUTH_CHALLENGE field 'iterations' {ITERATIONS}"),
    (AuthChallenge("00" * 8, 2**31), f"AUTH_CHALLENGE field 'iterations' {ITERATIONS}"),
    (AuthProof(SHA[:-2]), f"AUTH_PROOF field 'proof' {HASH}"),
]


@pytest.mark.parametrize(("message", "reason"), OUT_OF_RANGE, ids=plain_id)
def test_we_never_send_a_value_out_of_range(message, reason):
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        encode_message(message)


def body_of(message: object) -> dict:
    """The JSON body *message* would have, with its checks skipped (to send what we must not)."""
    import json

    from rcmd.messages import SCHEMA

    body = {}
    for key, spec in SCHEMA[type(message)].items():  # type: ignore[index]
        value = getattr(message, key)
        if value is None and not spec.required:
            continue
        body[key] = list(value) if isinstance(value, (list, tuple)) else value
    return json.loads(json.dumps(body))


@pytest.mark.parametrize(("message", "reason"), OUT_OF_RANGE, ids=plain_id)
def test_a_value_out_of_range_from_a_peer_is_refused_with_the_same_words(message, reason):
    import json

    payload = bytes((message.TYPE,)) + json.dumps(body_of(message)).encode()
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(payload)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Put("a", mtime=float("nan")), "PUT field 'mtime' is not a finite number"),
        (Put("a", mtime=float("inf")), "PUT field 'mtime' is not a finite number"),
        (GetReady(0, mtime=float("-inf")), "GET_READY field 'mtime' is not a finite number"),
        (Put("\udcff"), "PUT field 'path' is not Unicode text (it holds a lone surrogate)"),
        (Fs("ls", "\ud800"), "FS field 'path' is not Unicode text (it holds a lone surrogate)"),
    ],
    ids=plain_id,
)
def test_an_mtime_that_is_no_number_or_a_path_that_is_no_text_is_never_sent(message, reason):
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        encode_message(message)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Put("a", size=True), "PUT field 'size' has the wrong type (bool)"),  # type: ignore[arg-type]
        (Put("a", mode=1.0), "PUT field 'mode' has the wrong type (float)"),  # type: ignore[arg-type]
        (Get("a", blocks="ab"), "GET field 'blocks' has the wrong type (str)"),  # type: ignore[arg-type]
        (Get("a", block_size=1.0), "GET field 'block_size' has the wrong type (float)"),  # type: ignore[arg-type]
        (FileEnd(None, SHA), "FILE_END field 'size' has the wrong type (NoneType)"),  # type: ignore[arg-type]
        (FileEnd(1, None), "FILE_END field 'sha256' has the wrong type (NoneType)"),  # type: ignore[arg-type]
        (FsResult(entries={"name": "a"}), "FS_RESULT field 'entries' has the wrong type (dict)"),  # type: ignore[arg-type]
        (Fs(None), "FS field 'op' has the wrong type (NoneType)"),  # type: ignore[arg-type]
        (AuthChallenge("00" * 8, True), "AUTH_CHALLENGE field 'iterations' has the wrong type (bool)"),
    ],
    ids=plain_id,
)
def test_a_field_of_the_wrong_type_is_never_sent(message, reason):
    with pytest.raises(TypeError) as info:
        encode_message(message)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x20{}", "PUT lacks the required field 'path'"),
        (b"\x23{}", "PUT_FROM lacks the required field 'offset'"),
        (b"\x24{}", "GET_READY lacks the required field 'size'"),
        (b'\x26{"size":0}', "FILE_END lacks the required field 'sha256'"),
        (b'\x27{"sha256":"x"}', "FILE_DONE lacks the required field 'size'"),
        (b"\x28{}", "FILE_ERROR lacks the required field 'reason'"),
        (b"\x29{}", "FS lacks the required field 'op'"),
        (b'\x30{"salt":"0000000000000000"}', "AUTH_CHALLENGE lacks the required field 'iterations'"),
        (b"\x31{}", "AUTH_PROOF lacks the required field 'proof'"),
        (b'\x21{"path":"a","blocks":null}', "GET field 'blocks' has the wrong type (NoneType)"),
        (b'\x21{"path":"a","partial":null}', "GET field 'partial' has the wrong type (NoneType)"),
        (b'\x23{"offset":1.0}', "PUT_FROM field 'offset' has the wrong type (float)"),
        (b'\x2a{"truncated":1}', "FS_RESULT field 'truncated' has the wrong type (int)"),
        (b'\x20{"path":"a","mtime":"1"}', "PUT field 'mtime' has the wrong type (str)"),
        (b'\x20{"path":"a","mtime":1e400}', "PUT body: the number 1e400 is not a finite number"),
        (b'\x2a{"entries":[1]}', f"FS_RESULT field 'entries' {ENTRIES}"),
        (b'\x2a{"entries":{}}', "FS_RESULT field 'entries' has the wrong type (dict)"),
        (b'\x29{"op":"ls","path":5}', "FS field 'path' has the wrong type (int)"),
        (b"\x25", None),  # FILE_DATA with no data is a message (an empty file's only chunk)
    ],
    ids=plain_id,
)
def test_malformed_file_payloads_say_what_is_wrong(payload, reason):
    if reason is None:
        assert decode_message(payload) == FileData(b"")
        return
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(payload)
    assert str(info.value) == reason


def test_null_fields_from_a_peer_read_as_absent():
    assert decode_message(b'\x20{"path":"a","size":null,"mode":null,"mtime":null}') == Put("a")
    assert decode_message(b'\x2a{"cwd":null,"entries":null,"used":null,"quota":null}') == FsResult()
    assert decode_message(b'\x24{"size":1,"mtime":2}') == GetReady(1, mtime=2)


def test_blocks_from_a_peer_come_as_a_list():
    message = decode_message(f'\x22{{"partial":4,"block_size":4,"blocks":["{SHA}"]}}'.encode())
    assert message == PutReady(4, 4, [SHA])
    assert isinstance(message, PutReady)
    assert message.blocks == [SHA]


def test_a_one_character_term_is_a_name():
    from rcmd.messages import PtyRequest, Run

    assert decode_message(b'\x02{"command":"vi","pty":{"term":"x"}}') == Run(
        "vi", pty=PtyRequest("x", 24, 80)
    )


# ------------------------------------------------------------------------- their exceptions


@pytest.mark.parametrize("cls", [RemoteFileError, TransferError])
def test_file_errors_carry_the_reason_and_what_is_kept(cls):
    error = cls("checksum mismatch", kept=4096)
    assert (error.reason, error.kept, str(error)) == ("checksum mismatch", 4096, "checksum mismatch")
    assert error.args == ("checksum mismatch",)
    assert isinstance(error, RcmdError)
    bare = cls("no such file")
    assert (bare.reason, bare.kept, str(bare)) == ("no such file", 0, "no such file")
