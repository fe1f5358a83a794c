"""rcmd.auth with bytes and numbers only: proofs, secrets, the failure throttle."""

import hashlib
import hmac

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
    throttle_key,
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


def test_proofs_are_the_hmacs_docs_protocol_md_specifies():
    """Section 4a, byte for byte: another implementation computes the same proofs."""
    ns, nc = bytes(range(32)), bytes(range(32, 64))

    def spec(label: bytes) -> bytes:
        return hmac.new(SECRET, label + ns + nc, hashlib.sha256).digest()

    assert client_proof(SECRET, ns, nc) == spec(b"rcmd-auth-v1 client proof\0")
    assert server_proof(SECRET, ns, nc) == spec(b"rcmd-auth-v1 server proof\0")
    assert server_proof(SECRET, ns, nc) != server_proof(SECRET, nc, ns)  # order matters
    assert not proofs_match(client_proof(SECRET, ns, nc), client_proof(SECRET, ns, nc)[:-1] + b"\0")


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


@pytest.mark.parametrize(
    ("contents", "secret"),
    [
        (SECRET + b"\r\n", SECRET),
        (SECRET + b"\n\n", SECRET),
        (SECRET + b" \t\n", SECRET + b" \t"),  # only line ends are dropped: spaces are the secret's
        (SECRET + b"XX\n", SECRET + b"XX"),
        (b" " + SECRET, b" " + SECRET),
    ],
)
def test_only_trailing_line_ends_are_dropped_from_a_secret_file(tmp_path, contents, secret):
    path = tmp_path / "secret"
    path.write_bytes(contents)
    path.chmod(0o600)
    assert load_secret(str(path), environ={"RCMD_SECRET": "ignored when a file is given"}) == secret


def test_secret_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    with pytest.raises(SecretError, match="readable by others: chmod 600"):
        load_secret(path, environ={})


HINT = "e.g. python3 -c 'import secrets; print(secrets.token_hex(32))'"


def test_short_secret_is_refused_saying_where_it_came_from(tmp_path):
    with pytest.raises(SecretError) as info:
        load_secret(None, environ={"RCMD_SECRET": "hunter2"})
    assert str(info.value) == f"the secret in $RCMD_SECRET is 7 bytes; use at least 16 random ones, {HINT}"
    path = tmp_path / "secret"
    path.write_bytes(b"x" * 15 + b"\n")
    path.chmod(0o600)
    with pytest.raises(SecretError) as info:
        load_secret(path, environ={})
    assert str(info.value) == f"the secret in {path} is 15 bytes; use at least 16 random ones, {HINT}"


def test_sixteen_bytes_is_just_enough():
    assert load_secret(None, environ={"RCMD_SECRET": "x" * 16}) == b"x" * 16
    assert load_secret(None, environ={"RCMD_SECRET": "中" * 6}) == "中".encode() * 6  # 18 bytes
    with pytest.raises(SecretError, match="is 15 bytes"):
        load_secret(None, environ={"RCMD_SECRET": "x" * 15})
    assert load_secret(None, environ={"RCMD_SECRET": ""}) is None  # set but empty: no secret


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


def test_throttle_defaults():
    """0.25 s, doubling to at most 8 s, forgotten after 5 quiet minutes, 10,000 addresses."""
    throttle = FailureThrottle()
    t0 = 1_000_000.0  # a monotonic clock is far from 0
    delays = [throttle.failed("a", now=t0 + i) for i in range(7)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.failed("a", now=t0 + 6 + 300.0) == 8.0  # exactly 300 s: still remembered
    assert throttle.failed("a", now=t0 + 6 + 600.5) == 0.25  # 300.5 s quiet: forgiven
    for i in range(10_000):
        throttle.failed(f"b{i}", now=t0)
    assert len(throttle._failures) == 10_000
    assert "a" not in throttle._failures  # the oldest went first


def test_throttle_remembers_at_real_clock_values():
    throttle = FailureThrottle(forget_after=10.0)
    assert throttle.failed("a", now=5000.0) == 0.25
    assert throttle.failed("a", now=5009.0) == 0.5
    assert throttle.failed("a", now=5019.0) == 1.0  # 10 s since the last: not more than 10
    assert throttle.failed("a", now=5029.5) == 0.25


def test_throttle_delay_per_count_of_failures():
    throttle = FailureThrottle(base=0.25, max_delay=8.0)
    assert [throttle.delay(n) for n in (-1, 0, 1, 2, 3, 6, 7, 1000)] == [
        0.0,
        0.0,
        0.25,
        0.5,
        1.0,
        8.0,
        8.0,
        8.0,
    ]


def test_throttle_exponent_stops_at_64():
    """With no max_delay, the delay doubles up to base * 2**64, then stays there: the count
    is capped, so a flood of failures never overflows a float."""
    throttle = FailureThrottle(base=1.0, max_delay=float("inf"))
    delays = [throttle.failed("a", now=0.0) for _ in range(100)]
    assert delays[:3] == [1.0, 2.0, 4.0]
    assert delays[64] == 2.0**64 == max(delays)
    assert delays[63] == 2.0**63
    assert delays[-1] == 2.0**64
    assert throttle.delay(10_000) == 2.0**64


def test_throttle_wait_is_the_time_left_on_the_lock():
    throttle = FailureThrottle(base=0.25, max_delay=8.0)
    assert throttle.wait("10.0.0.1", now=100.0) == 0.0  # never failed: now
    assert throttle.failed("10.0.0.1", now=100.0) == 0.25
    assert throttle.wait("10.0.0.1", now=100.0) == 0.25
    assert throttle.wait("10.0.0.1", now=100.125) == 0.125
    assert throttle.wait("10.0.0.1", now=100.25) == 0.0  # unlocked
    assert throttle.wait("10.0.0.1", now=500.0) == 0.0  # long after: never negative
    assert throttle.wait("10.0.0.2", now=100.0) == 0.0  # per address
    throttle.failed("10.0.0.1", now=101.0)
    throttle.failed("10.0.0.1", now=102.0)  # the third: 1 s
    assert throttle.wait("10.0.0.1", now=102.0) == 1.0
    assert throttle.wait("10.0.0.1", now=102.5) == 0.5


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        # IPv6: the /64 the address is in, whatever its last 64 bits.
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1:2:3", "2001:db8::/64"),
        ("2001:db8:0:1::5", "2001:db8:0:1::/64"),
        ("2001:db8:0:1:8000::5", "2001:db8:0:1::/64"),  # the 65th bit set: still the same /64
        ("::1", "::/64"),
        # An IPv4 client of a dual-stack socket is counted as its IPv4 address.
        ("::ffff:10.0.0.1", "10.0.0.1"),
        # The zone (scope) after the first % is dropped.
        ("fe80::1%eth0", "fe80::/64"),
        ("fe80::1%", "fe80::/64"),
        ("10.0.0.1%eth0", "10.0.0.1"),
        ("10.0.0.1%a%b", "10.0.0.1"),
        # Not an IP address (a name, a Unix socket path): counted as it is.
        ("localhost", "localhost"),
        ("/run/rcmd.sock", "/run/rcmd.sock"),
        ("", ""),
    ],
)
def test_throttle_key(host, key):
    assert throttle_key(host) == key
