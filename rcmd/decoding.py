"""Turning a command's output bytes into text without breaking characters. Sans-I/O.

Output arrives in chunks cut wherever the pipe or the network cut it, often inside a
multibyte character (UTF-8 uses up to 4 bytes, GBK 2). Decoding each chunk on its own
turns such a character into two U+FFFD; an incremental decoder keeps the partial bytes
until the rest arrives. stdout and stderr each get their own decoder, since a character
split in one stream is not continued by the other.
"""

from __future__ import annotations

import codecs

#: What a server announces when it cannot tell, and what "auto" falls back to first.
DEFAULT_ENCODING = "utf-8"
#: What Chinese Windows' cmd.exe prints; "auto" tries it when bytes are not UTF-8.
FALLBACK_ENCODING = "gbk"


def normalize_encoding(name: str) -> str:
    """The canonical codec name for *name* (``"UTF8"`` -> ``"utf-8"``); LookupError if unknown."""
    return codecs.lookup(name).name


def resolve_encoding(requested: str, announced: str | None) -> str:
    """The encoding to decode a server's output with.

    *requested* is the user's choice: a codec name, or ``"auto"`` to take what the server
    *announced* in its HELLO, else UTF-8. Raises LookupError for an unknown codec.
    """
    if requested != "auto":
        return normalize_encoding(requested)
    if announced:
        try:
            return normalize_encoding(announced)
        except LookupError:
            pass  # a codec the server has and we lack: fall back rather than fail
    return DEFAULT_ENCODING


def guess_encoding(sample: bytes) -> str:
    """UTF-8 if *sample* is valid UTF-8 (a character cut at its end allowed), else GBK.

    For peers that announce nothing (the naive server): a heuristic, as it must be.
    """
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return FALLBACK_ENCODING
    return DEFAULT_ENCODING


class StreamDecoder:
    """Incremental decoding of one byte stream; undecodable bytes become U+FFFD, never an error."""

    def __init__(self, encoding: str, errors: str = "replace") -> None:
        self.encoding = normalize_encoding(encoding)
        self._decoder = codecs.getincrementaldecoder(self.encoding)(errors=errors)

    def decode(self, data: bytes, final: bool = False) -> str:
        """Text for *data*; bytes of a character not yet complete are kept for the next call."""
        return self._decoder.decode(data, final)

    def flush(self) -> str:
        """Text for what is left at the end of the stream (U+FFFD for a cut-off character)."""
        return self._decoder.decode(b"", True)


class OutputDecoder:
    """Two :class:`StreamDecoder` s, for a command's stdout and stderr."""

    def __init__(self, encoding: str, errors: str = "replace") -> None:
        self.stdout = StreamDecoder(encoding, errors)
        self.stderr = StreamDecoder(encoding, errors)
        self.encoding = self.stdout.encoding
