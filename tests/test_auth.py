"""rcmd.auth with bytes and numbers only: proofs, secrets, the failure throttle."""

import pytest

from rcmd.auth import (
    FailureThrottle,
    SecretError,
    client_proof,
    decode_hex,
    load_secret,
    new_nonce,
    proofs_match,
    server_proof,
)

SECRET = b"0123456789abcdef0123456789abcdef"


def test_proofs_bind_the_secret_both_nonces_and_the_direction():
    ns, nc = new_nonce(), new_nonce()
    proof = client_proof(SECRET, ns, nc)
    assert len(proof) == 32
    assert proofs_match(proof, client_proof(SECRET, ns, nc))
    assert proof != client_proof(SECRET + b"x", ns, nc)  # another secret
    assert proof != client_proof(SECRET, new_nonce(), nc)  # a replay on a new connection
    assert proof != client_proof(SECRET, ns, new_nonce())
    assert proof != server_proof(SECRET, ns, nc)  # cannot be reflected back as the server's


def test_nonces_are_fresh():
    assert len({new_nonce() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("ab" * 32, 32, bytes([0xAB]) * 32),
        ("ab" * 31, 32, None),
        ("zz" * 32, 32, None),
        (None, 32, None),
        (5, 32, None),
    ],
)
def test_decode_hex(value, size, expected):
    assert decode_hex(value, size) == expected


def test_secret_from_a_file_drops_the_newline(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)
    assert load_secret(path, environ={}) == SECRET


def test_secret_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    with pytest.raises(SecretError, match="readable by others: chmod 600"):
        load_secret(path, environ={})


def test_short_secret_is_refused(tmp_path):
    with pytest.raises(SecretError, match="use at least 16 random"):
        load_secret(None, environ={"RCMD_SECRET": "hunter2"})


def test_secret_from_the_environment_and_none():
    assert load_secret(None, environ={"RCMD_SECRET": SECRET.decode()}) == SECRET
    assert load_secret(None, environ={}) is None


def test_missing_secret_file(tmp_path):
    with pytest.raises(SecretError, match="cannot read the secret file"):
        load_secret(tmp_path / "nope", environ={})


def test_throttle_doubles_per_failure_caps_and_forgets():
    throttle = FailureThrottle(base=0.25, max_delay=8.0, forget_after=300.0)
    delays = [throttle.failed("10.0.0.1", now=float(i)) for i in range(8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.failed("10.0.0.2", now=8.0) == 0.25  # per address
    assert throttle.failed("10.0.0.1", now=8.0 + 301) == 0.25  # quiet for 5 minutes: forgiven
    assert throttle.failed("10.0.0.1", now=8.0 + 302) == 0.5  # a success in between would change nothing


def test_throttle_memory_is_bounded():
    throttle = FailureThrottle(max_addresses=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", now=0.0)
    assert len(throttle._failures) == 100
