"""What a TLS handshake costs: the server measures it with its certificate when it starts and
says so, with where it runs (worker threads, off the event loop: rcmd.server.tls) and the
rate that allows (an RSA 4096 key: ~3-7 ms each, against well under 1 ms for ECDSA P-256)."""

from __future__ import annotations

import asyncio
import logging
import math
import re

import pytest
import trustme

from rcmd.server import Server, ServerConfig
from rcmd.server.config import tls_handshake_cost


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    path = tmp_path_factory.mktemp("tls") / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


def test_the_cost_of_a_handshake_is_measured_with_the_servers_own_context(certificate):
    config = ServerConfig(host="127.0.0.1", port=0, tls_cert=certificate)
    assert config.tls is not None
    cost = tls_handshake_cost(config.tls)
    assert 0 < cost < math.inf


def test_a_tls_server_logs_what_a_handshake_costs_when_it_starts(certificate, caplog):
    async def main() -> None:
        async with Server(host="127.0.0.1", port=0, tls_cert=certificate):
            pass

    with caplog.at_level(logging.INFO, logger="rcmd.server"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "TLS handshake costs" in r.getMessage()]
    assert len(lines) == 1
    assert re.fullmatch(
        r"a TLS handshake costs \d+\.\d ms of CPU, off the event loop on \d+ threads?"
        r" \(at most ~\d+ handshakes a second\)",
        lines[0],
    )


def test_a_plain_server_measures_no_handshake(caplog):
    async def main() -> None:
        async with Server(host="127.0.0.1", port=0):
            pass

    with caplog.at_level(logging.INFO, logger="rcmd.server"):
        asyncio.run(main())
    assert not [r for r in caplog.records if "TLS handshake costs" in r.getMessage()]
