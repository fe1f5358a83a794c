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


def test_a_character_split_between_chunks_survives_where_per_chunk_decoding_breaks_it():
    data = "中".encode()  # 3 bytes
    decoder = StreamDecoder("utf-8")
    assert [decoder.decode(data[:1]), decoder.decode(data[1:2]), decoder.decode(data[2:])] == ["", "", "中"]
    assert decoder.flush() == ""
    # What Fabric does, a fresh decoder per chunk: the character is lost, each byte a U+FFFD.
    per_chunk = "".join(StreamDecoder("utf-8").decode(chunk, final=True) for chunk in (data[:1], data[1:]))
    assert per_chunk == "\ufffd" * 3


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


def test_final_decode_ends_the_stream():
    decoder = StreamDecoder("utf-8")
    assert decoder.decode("中".encode()[:2], final=True) == "\ufffd"
    assert decoder.decode(b"ok") == "ok"  # nothing of the cut character was kept


@pytest.mark.parametrize(
    ("errors", "expected"), [("replace", "a\ufffd"), ("backslashreplace", "a\\xff"), ("ignore", "a")]
)
def test_both_output_streams_use_the_error_handler_asked_for(errors, expected):
    decoder = OutputDecoder("utf-8", errors) if errors != "replace" else OutputDecoder("utf-8")
    assert decoder.stdout.decode(b"a\xff", final=True) == expected
    assert decoder.stderr.decode(b"a\xff", final=True) == expected


def test_strict_output_decoder_raises_on_both_streams():
    decoder = OutputDecoder("utf-8", "strict")
    for stream in (decoder.stdout, decoder.stderr):
        with pytest.raises(UnicodeDecodeError):
            stream.decode(b"\xff")


@pytest.mark.parametrize(("name", "canonical"), [("UTF8", "utf-8"), ("GBK", "gbk"), ("latin-1", "iso8859-1")])
def test_decoders_report_the_canonical_encoding_name(name, canonical):
    assert StreamDecoder(name).encoding == canonical
    decoder = OutputDecoder(name)
    assert decoder.encoding == decoder.stdout.encoding == decoder.stderr.encoding == canonical


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
