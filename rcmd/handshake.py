"""The client's side of the handshake, sans-I/O: what to answer the server's HELLO with, and
the check of its AUTH_OK. Shared by every client transport (rcmd.aio now; the blocking client's
``_handshake`` does the same steps and can call this too).

    handshake = ClientHandshake(where="127.0.0.1:9000", secret=secret)
    our_hello = handshake.answer(server_hello)   # raises AuthenticationError
    if handshake.expects_auth_ok:
        handshake.check_auth_ok(auth_ok)         # raises AuthenticationError

Nothing here reads a socket or a clock: the transport moves the messages and keeps the time.
"""

from __future__ import annotations

from . import __version__
from .auth import NONCE_SIZE, PROOF_SIZE, client_proof, decode_hex, new_nonce, proofs_match, server_proof
from .errors import AuthenticationError, ProtocolMismatch, RemoteProtocolError, ServerError, TlsError
from .messages import AuthOk, Hello

__all__ = ["TLS_REQUIRED_REASON", "ClientHandshake", "hello_failure"]

#: What a TLS server's ERROR to a plaintext client says (rcmd/server/listener.py): a TLS failure.
TLS_REQUIRED_REASON = "this server requires TLS"


def hello_failure(where: str, exc: Exception, timeout: float | None) -> Exception:
    """The error to raise when waiting for the server's HELLO failed with *exc*.

    No HELLO in time, or garbage: ProtocolMismatch (it may be naive, or not rcmd at all). An
    ERROR saying TLS is required: TlsError. Any other exception comes back as it is.
    """
    if isinstance(exc, TimeoutError):
        waited = "" if timeout is None else f" within {timeout:g}s"
        return ProtocolMismatch(
            f"the server at {where} sent no HELLO{waited}: it may speak naive framing "
            "(use --framing naive), or not be an rcmd server at all"
        )
    if isinstance(exc, RemoteProtocolError):
        return ProtocolMismatch(f"the server at {where} does not speak rcmd: {exc}")
    if isinstance(exc, ServerError) and TLS_REQUIRED_REASON in exc.reason:
        return TlsError(f"{where}: {exc.reason}")
    return exc


class ClientHandshake:
    """One client's handshake with the server at *where* (``host:port``, for messages).

    With *secret*, the client proves it knows it (HMAC-SHA256 over both nonces) and
    requires the server to prove it too, in AUTH_OK; a server that asks for no
    authentication is refused when a secret was given (it may not be the server meant).
    """

    def __init__(self, where: str, secret: bytes | None) -> None:
        self.where = where
        self.secret = secret
        #: True once answer() sent a proof: the next message must be the server's AUTH_OK.
        self.expects_auth_ok = False
        self._nonces: tuple[bytes, bytes] | None = None

    def answer(self, server_hello: Hello) -> Hello:
        """Our HELLO in reply to *server_hello*. Raises AuthenticationError when the two
        sides disagree on authentication, or the server offers a scheme we do not know."""
        software = f"rcmd {__version__}"
        where, secret = self.where, self.secret
        if not server_hello.auth:
            if secret is not None:
                raise AuthenticationError(
                    f"the server at {where} does not ask for authentication, but a secret was given: "
                    "refusing to send it commands (it may not be the server you meant)"
                )
            return Hello(software=software)
        if secret is None:
            raise AuthenticationError(
                f"the server at {where} requires authentication: give the shared secret "
                "(--secret-file FILE, or $RCMD_SECRET)"
            )
        server_nonce = decode_hex(server_hello.nonce, NONCE_SIZE)
        if server_hello.auth != "hmac-sha256" or server_nonce is None:
            raise AuthenticationError(
                f"the server at {where} offers authentication rcmd does not know: {server_hello.auth!r}"
            )
        client_nonce = new_nonce()
        self._nonces = (server_nonce, client_nonce)
        self.expects_auth_ok = True
        proof = client_proof(secret, server_nonce, client_nonce)
        return Hello(software=software, nonce=client_nonce.hex(), mac=proof.hex())

    def refused(self, exc: ServerError) -> AuthenticationError:
        """The error for an ERROR the server sent instead of AUTH_OK."""
        return AuthenticationError(f"the server at {self.where} refused us: {exc.reason} (wrong secret?)")

    def check_auth_ok(self, reply: AuthOk) -> None:
        """Check the server's proof in *reply*; AuthenticationError if it does not hold."""
        if self.secret is None or self._nonces is None:
            raise RuntimeError("check_auth_ok() before answer() sent a proof")
        mac = decode_hex(reply.mac, PROOF_SIZE)
        if mac is None or not proofs_match(server_proof(self.secret, *self._nonces), mac):
            raise AuthenticationError(
                f"the server at {self.where} could not prove it knows the secret: it may be an impostor"
            )
        self.expects_auth_ok = False
