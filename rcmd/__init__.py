"""rcmd: remote command execution over TCP, and a demonstration of TCP's "sticky packets".

Public API::

    import rcmd
    with rcmd.connect("127.0.0.1", 9000) as client:
        result = client.run("ls -l")
        print(result.returncode, result.stdout_text)
        for event in client.stream("make"):
            ...  # rcmd.Stdout / rcmd.Stderr chunks as they come, then rcmd.Exit

    async with rcmd.aio.connect("127.0.0.1", 9000) as client:   # the same, on asyncio
        result = await client.run("ls -l")

    results = rcmd.Group("web[01-20]:9000").run("uptime")  # host -> CompletedCommand or error
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)

__version__ = "0.1.0"

# Public names are imported on first use (PEP 562), so `rcmd -c true` does not pay for the
# server, asyncio or the demo it never touches.
_EXPORTS = {
    "connect": "client",
    "Client": "client",
    "CommandStream": "client",
    "CompletedCommand": "result",
    "TimeoutExpired": "result",
    "Group": "group",
    "NaiveClient": "naive",
    "Server": "server",
    "ServerConfig": "server",
    "BackgroundServer": "server",
    "Stdout": "messages",
    "Stderr": "messages",
    "Exit": "messages",
    "encode_message": "messages",
    "decode_message": "messages",
    "OutputDecoder": "decoding",
    "StreamDecoder": "decoding",
    "LengthPrefixFramer": "framing",
    "NaiveFramer": "framing",
    "encode_frame": "framing",
    "NEED_DATA": "framing",
    "RcmdError": "errors",
    "AuthenticationError": "errors",
    "TlsError": "errors",
    "ProtocolError": "errors",
    "LocalProtocolError": "errors",
    "RemoteProtocolError": "errors",
    "ProtocolMismatch": "errors",
    "FrameTooLarge": "errors",
    "ConnectionClosed": "errors",
    "ServerError": "errors",
    "CommandError": "errors",
    "RemoteFileError": "errors",
    "TransferError": "errors",
    "TransferResult": "files",
    "RemoteEntry": "files",
}

__all__ = [
    "NEED_DATA",
    "AuthenticationError",
    "BackgroundServer",
    "Client",
    "CommandError",
    "CommandStream",
    "CompletedCommand",
    "ConnectionClosed",
    "Exit",
    "FrameTooLarge",
    "Group",
    "LengthPrefixFramer",
    "LocalProtocolError",
    "NaiveClient",
    "NaiveFramer",
    "OutputDecoder",
    "ProtocolError",
    "ProtocolMismatch",
    "RcmdError",
    "RemoteEntry",
    "RemoteFileError",
    "RemoteProtocolError",
    "Server",
    "ServerConfig",
    "ServerError",
    "Stderr",
    "Stdout",
    "StreamDecoder",
    "TimeoutExpired",
    "TlsError",
    "TransferError",
    "TransferResult",
    "__version__",
    "aio",
    "connect",
    "decode_message",
    "encode_frame",
    "encode_message",
    "messages",
]  # a literal, so type checkers and linters see it; tests check it against _EXPORTS

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports these
    from . import aio, messages
    from .client import Client, CommandStream, connect
    from .decoding import OutputDecoder, StreamDecoder
    from .errors import (
        AuthenticationError,
        CommandError,
        ConnectionClosed,
        FrameTooLarge,
        LocalProtocolError,
        ProtocolError,
        ProtocolMismatch,
        RcmdError,
        RemoteFileError,
        RemoteProtocolError,
        ServerError,
        TlsError,
        TransferError,
    )
    from .files import RemoteEntry, TransferResult
    from .framing import NEED_DATA, LengthPrefixFramer, NaiveFramer, encode_frame
    from .group import Group
    from .messages import Exit, Stderr, Stdout, decode_message, encode_message
    from .naive import NaiveClient
    from .result import CompletedCommand, TimeoutExpired
    from .server import BackgroundServer, Server, ServerConfig


def __getattr__(name: str) -> object:
    import importlib

    if name in ("messages", "aio"):
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rcmd' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
