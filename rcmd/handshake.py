"""The client's side of the handshake, sans-I/O: what to answer the server's HELLO with, and
the check of its AUTH_OK. The one implementation, used by both transports (rcmd.client and
rcmd.aio); each only moves the messages::

    try:
        server_hello = receive()
    except (TimeoutError, RcmdError) as exc:
        raise hello_failure(where, exc, timeout)    # ProtocolMismatch, TlsError, ...
    handshake = ClientHandshake(where="127.0.0.1:9000", secret=secret)  # or user=, password=
    send(handshake.answer(server_hello))            # raises AuthenticationError
    try:
        if handshake.expects_challenge:             # a user's login (SCRAM-SHA-256)
            send(handshake.prove(receive()))        # PBKDF2: slow on purpose, run it off the loop
        if handshake.expects_auth_ok:
            handshake.check_auth_ok(receive())      # raises AuthenticationError
    except (ServerError, TimeoutError) as exc:
        raise handshake.failed(exc)                 # refused, or no answer: AuthenticationError

Nothing here reads a socket or a clock: the transport moves the messages and keeps the time.
"""

from __future__ import annotations

from . import __version__
from .auth import NONCE_SIZE, PROOF_SIZE, client_proof, decode_hex, new_nonce, proofs_match, server_proof
from .errors import AuthenticationError, ProtocolMismatch, RemoteProtocolError, ServerError, TlsError
from .messages import AuthChallenge, AuthOk, AuthProof, Hello

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
    With *user* and *password*, it logs in with SCRAM-SHA-256 (docs/PROTOCOL.md), the
    server proving it holds the verifier.
    """

    def __init__(
        self, where: str, secret: bytes | None, *, user: str | None = None, password: str | None = None
    ) -> None:
        self.where = where
        self.secret = secret
        self.user = user
        self.password = password
        #: True once answer() named a user: the next message must be the server's AUTH_CHALLENGE.
        self.expects_challenge = False
        #: True once a proof is sent: the next message must be the server's AUTH_OK.
        self.expects_auth_ok = False
        self._nonces: tuple[bytes, bytes] | None = None
        self._scram: tuple[bytes, bytes] | None = None  # salted password, auth message

    def answer(self, server_hello: Hello) -> Hello:
        """Our HELLO in reply to *server_hello*. Raises AuthenticationError when the two
        sides disagree on authentication, or the server offers a scheme we do not know."""
        software = f"rcmd {__version__}"
        where, secret = self.where, self.secret
        if self.user is None and not server_hello.auth:
            if secret is not None:
                raise AuthenticationError(
                    f"the server at {where} does not ask for authentication, but a secret was given: "
                    "refusing to send it commands (it may not be the server you meant)"
                )
            return Hello(software=software)
        from .scram import SCHEME as SCRAM  # not before: a server without accounts needs none of it

        if self.user is not None or server_hello.auth == SCRAM:
            return self._answer_as_user(server_hello, software)
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

    def _answer_as_user(self, server_hello: Hello, software: str) -> Hello:
        from .scram import SCHEME as SCRAM

        where = self.where
        if server_hello.auth != SCRAM:
            raise AuthenticationError(
                f"the server at {where} has no user accounts (it offers "
                f"{server_hello.auth or 'no authentication'}): connect without --user"
            )
        if self.user is None or self.password is None:
            raise AuthenticationError(
                f"the server at {where} requires a user name and password (--user NAME)"
            )
        server_nonce = decode_hex(server_hello.nonce, NONCE_SIZE)
        if server_nonce is None:
            raise AuthenticationError(f"the server at {where} sent a bad nonce")
        client_nonce = new_nonce()
        self._nonces = (server_nonce, client_nonce)
        self.expects_challenge = True
        return Hello(software=software, nonce=client_nonce.hex(), user=self.user)

    def prove(self, challenge: AuthChallenge) -> AuthProof:
        """Our SCRAM proof for the server's salt and rounds (PBKDF2 of the password: ~0.1 to
        1 s of CPU on purpose; an event loop should run this in a thread)."""
        from . import scram

        if not self.expects_challenge or self.user is None or self.password is None or self._nonces is None:
            raise RuntimeError("prove() before answer() named a user")
        if challenge.iterations < scram.MIN_ITERATIONS:
            raise AuthenticationError(
                f"the server at {self.where} asks for {challenge.iterations} PBKDF2 rounds, fewer than "
                f"{scram.MIN_ITERATIONS}: refusing (a cheap proof could be brute-forced)"
            )
        salt = bytes.fromhex(challenge.salt)
        salted = scram.salted_password(self.password, salt, challenge.iterations)
        message = scram.auth_message(self.user, *self._nonces, salt, challenge.iterations)
        self._scram = (salted, message)
        self.expects_challenge = False
        self.expects_auth_ok = True
        return AuthProof(scram.client_proof(salted, message).hex())

    def failed(self, exc: Exception) -> Exception:
        """The error to raise when the exchange after our HELLO failed with *exc*: the server's
        ERROR is a refusal, a TimeoutError no answer (both AuthenticationError); any other
        exception comes back as it is."""
        if isinstance(exc, ServerError):
            hint = "wrong user name or password?" if self.user is not None else "wrong secret?"
            return AuthenticationError(f"the server at {self.where} refused us: {exc.reason} ({hint})")
        if isinstance(exc, TimeoutError):
            waited_for = "our HELLO" if self.expects_challenge else "our proof"
            return AuthenticationError(f"the server at {self.where} did not answer {waited_for} in time")
        return exc

    def check_auth_ok(self, reply: AuthOk) -> None:
        """Check the server's proof in *reply*; AuthenticationError if it does not hold."""
        if self._scram is not None:
            from . import scram

            salted, message = self._scram
            mac = decode_hex(reply.mac, PROOF_SIZE)
            if mac is None or not proofs_match(
                scram.server_signature(scram.server_key(salted), message), mac
            ):
                raise AuthenticationError(
                    f"the server at {self.where} could not prove it holds your verifier: it may be an impostor"
                )
            self.expects_auth_ok = False
            return
        if self.secret is None or self._nonces is None:
            raise RuntimeError("check_auth_ok() before answer() sent a proof")
        mac = decode_hex(reply.mac, PROOF_SIZE)
        if mac is None or not proofs_match(server_proof(self.secret, *self._nonces), mac):
            raise AuthenticationError(
                f"the server at {self.where} could not prove it knows the secret: it may be an impostor"
            )
        self.expects_auth_ok = False
