"""Incremental decoding: a character split between chunks survives; bad bytes never crash."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcmd.decoding import OutputDecoder, StreamDecoder, guess_encoding, resolve_encoding

TEXT = "远程命令 rcmd: 粘包 and its fix ✓"


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_every_split_point_decodes_correctly(encoding):
    text = TEXT if encoding == "utf-8" else TEXT.replace("✓", "")
    data = text.encode(encoding)
    for cut in range(len(data) + 1):
        decoder = StreamDecoder(encoding)
        assert decoder.decode(data[:cut]) + decoder.decode(data[cut:]) + decoder.flush() == text


def test_per_chunk_decoding_is_what_breaks():
    data = "中".encode()
    broken = data[:1].decode("utf-8", "replace") + data[1:].decode("utf-8", "replace")
    assert "\ufffd" in broken  # the bug the incremental decoder avoids


@given(st.text(), st.lists(st.integers(0, 400), max_size=8))
def test_any_chunking_gives_the_original_text(text, cuts):
    data = text.encode("utf-8")
    points = [*sorted({min(c, len(data)) for c in cuts}), len(data)]
    decoder, start, out = StreamDecoder("utf-8"), 0, []
    for p in points:
        out.append(decoder.decode(data[start:p]))
        start = p
    assert "".join(out) + decoder.flush() == text


@given(st.binary())
def test_undecodable_bytes_never_raise(data):
    for encoding in ("utf-8", "gbk"):
        decoder = StreamDecoder(encoding)
        decoder.decode(data)
        decoder.flush()


def test_stdout_and_stderr_are_decoded_apart():
    data = "中".encode()
    decoder = OutputDecoder("utf-8")
    assert decoder.stdout.decode(data[:1]) == ""
    assert decoder.stderr.decode(b"x") == "x"  # does not complete stdout's character
    assert decoder.stdout.decode(data[1:]) == "中"


def test_a_character_cut_off_at_the_end_becomes_a_replacement():
    decoder = StreamDecoder("utf-8")
    assert decoder.decode("中".encode()[:2]) == ""
    assert decoder.flush() == "\ufffd"


@pytest.mark.parametrize(
    ("requested", "announced", "expected"),
    [
        ("auto", "gbk", "gbk"),
        ("auto", "UTF8", "utf-8"),
        ("auto", None, "utf-8"),
        ("auto", "no-such-codec", "utf-8"),
        ("GB2312", "utf-8", "gb2312"),
        ("latin-1", None, "iso8859-1"),
    ],
)
def test_resolve_encoding(requested, announced, expected):
    assert resolve_encoding(requested, announced) == expected


def test_unknown_requested_encoding_is_an_error():
    with pytest.raises(LookupError):
        resolve_encoding("no-such-codec", None)


def test_guess_encoding():
    assert guess_encoding("中文".encode()) == "utf-8"
    assert guess_encoding("中文".encode()[:-1]) == "utf-8"  # cut, still UTF-8
    assert guess_encoding("中文".encode("gbk")) == "gbk"
