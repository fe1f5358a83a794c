"""TLS with throwaway certificates (trustme): the happy path, and each mismatch read clearly."""

from __future__ import annotations

import subprocess

import pytest
import trustme
from conftest import CLIENT_ARGV

from rcmd import TlsError, connect
from rcmd.console import ExitStatus

SECRET = "tls-and-auth-secret-0123456789"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    other_ca = trustme.CA()
    other_ca.cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return folder


@pytest.fixture(scope="module")
def tls_server(server_factory, certs):
    return server_factory("--tls-cert", str(certs / "server.pem"))


def test_tls_round_trip(tls_server, certs):
    with connect(*tls_server.address, tls_ca=str(certs / "ca.pem")) as client:
        assert client._sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.run("echo secret-output; echo err >&2; exit 4").stdout == b"secret-output\n"
        big = client.run("head -c 3000000 /dev/zero")  # many TLS records, pending() buffering
        assert big.stdout == bytes(3_000_000)
        assert client.run("cat", input=b"x" * 1_000_000).stdout == b"x" * 1_000_000


def test_untrusted_certificate(tls_server, certs):
    with pytest.raises(TlsError, match="not trusted"):
        connect(*tls_server.address, tls_ca=str(certs / "other-ca.pem"))
    with pytest.raises(TlsError, match="not trusted"):
        connect(*tls_server.address, tls=True)  # the system's CAs do not know trustme's


@pytest.fixture(scope="module")
def localhost_only_server(server_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls-localhost")
    ca = trustme.CA()
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return server_factory("--tls-cert", str(folder / "server.pem")), str(folder / "ca.pem")


def test_the_certificate_is_checked_against_the_name_dialled(localhost_only_server):
    server, ca = localhost_only_server  # listening on 127.0.0.1, certified for "localhost" only
    with pytest.raises(TlsError, match=r"is not for '127\.0\.0\.1': IP address mismatch"):
        connect("127.0.0.1", server.port, tls_ca=ca)  # a trusted CA, but not this name
    with connect("localhost", server.port, tls_ca=ca) as client:  # /etc/hosts: loopback
        assert client.run("echo by-name").stdout == b"by-name\n"


def test_plaintext_client_to_a_tls_server_is_told_to_use_tls(tls_server):
    with pytest.raises(TlsError, match="this server requires TLS: connect with --tls"):
        connect(*tls_server.address)
    proc = subprocess.run(
        [*CLIENT_ARGV, f"127.0.0.1:{tls_server.port}", "-c", "true"], capture_output=True, timeout=60
    )
    assert proc.returncode == ExitStatus.TLS_FAILED == 247  # was 253, a code the table gave to other causes
    assert b"this server requires TLS" in proc.stderr


def test_host_name_mismatch_names_the_real_cause(server_factory, certs):
    # The CA is given and trusted; the certificate is for another name: say that, not "untrusted".
    cert = trustme.CA()
    cert.issue_cert("elsewhere.example").private_key_and_cert_chain_pem.write_to_path(
        str(certs / "elsewhere.pem")
    )
    cert.cert_pem.write_to_path(str(certs / "elsewhere-ca.pem"))
    server = server_factory("--tls-cert", str(certs / "elsewhere.pem"))
    for host in ("127.0.0.1", "localhost"):  # OpenSSL's IP address and host name mismatches
        with pytest.raises(TlsError, match=f"is not for '{host}'") as caught:
            connect(host, server.port, tls_ca=str(certs / "elsewhere-ca.pem"))
        assert "not trusted" not in str(caught.value)
        assert "--tls-ca" not in str(caught.value)


def test_tls_client_to_a_plaintext_server(server, certs):
    with pytest.raises(TlsError, match="may not use TLS"):
        connect(*server.address, tls_ca=str(certs / "ca.pem"))
    assert "this server does not use TLS" in server.wait_for_log(
        r"protocol error: this server does not use TLS[^\n]*"
    ).group(0)


def test_tls_and_a_secret_together(server_factory, certs, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    server = server_factory("--tls-cert", str(certs / "server.pem"), "--secret-file", str(secret))
    with connect(*server.address, tls_ca=str(certs / "ca.pem"), secret=SECRET) as client:
        assert client.run("echo both").stdout == b"both\n"


def test_cli_over_tls(tls_server, certs):
    target = f"127.0.0.1:{tls_server.port}"
    proc = subprocess.run(
        [*CLIENT_ARGV, target, "--tls-ca", str(certs / "ca.pem"), "-c", "echo hi; exit 6"],
        capture_output=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (6, b"hi\n")
    proc = subprocess.run([*CLIENT_ARGV, target, "--tls", "-c", "true"], capture_output=True, timeout=60)
    assert proc.returncode == ExitStatus.TLS_FAILED
    assert b"not trusted" in proc.stderr
    assert b"Traceback" not in proc.stderr
