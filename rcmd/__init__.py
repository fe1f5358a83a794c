"""rcmd: remote command execution over TCP, and a demonstration of TCP's "sticky packets".

Public API::

    import rcmd
    with rcmd.connect("127.0.0.1", 9000) as client:
        result = client.run("ls -l")
        print(result.returncode, result.stdout_text)
        for event in client.stream("make"):
            ...  # rcmd.Stdout / rcmd.Stderr chunks as they come, then rcmd.Exit
"""

__version__ = "0.1.0"

from .client import Client, CommandStream, CompletedCommand, connect  # noqa: E402
from .decoding import OutputDecoder, StreamDecoder  # noqa: E402
from .errors import (  # noqa: E402
    AuthenticationError,
    CommandError,
    ConnectionClosed,
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    ProtocolMismatch,
    RcmdError,
    RemoteProtocolError,
    ServerError,
    TlsError,
)
from .framing import NEED_DATA, LengthPrefixFramer, NaiveFramer, encode_frame  # noqa: E402
from . import messages  # noqa: E402
from .messages import Exit, Stderr, Stdout, decode_message, encode_message  # noqa: E402
from .naive import NaiveClient  # noqa: E402
from .server import BackgroundServer, Server, ServerConfig  # noqa: E402

__all__ = [
    "__version__",
    "connect",
    "Client",
    "CommandStream",
    "CompletedCommand",
    "NaiveClient",
    "Server",
    "BackgroundServer",
    "ServerConfig",
    "Stdout",
    "Stderr",
    "Exit",
    "messages",
    "encode_message",
    "decode_message",
    "messages",
    "encode_message",
    "decode_message",
    "OutputDecoder",
    "StreamDecoder",
    "LengthPrefixFramer",
    "NaiveFramer",
    "encode_frame",
    "NEED_DATA",
    "RcmdError",
    "AuthenticationError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ProtocolMismatch",
    "FrameTooLarge",
    "ConnectionClosed",
    "ServerError",
    "TlsError",
    "CommandError",
]
