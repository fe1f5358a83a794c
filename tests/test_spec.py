"""Every MUST in docs/PROTOCOL.md has a test that cites its section.

MUSTS maps each requirement (its section and a phrase of it) to the tests that check it. The
first test reads the spec and fails when a MUST has no entry, so the spec cannot gain an
untested requirement; the second fails when a named test no longer exists. The two tests
after them are the MUSTs of §4 items 6-7 (closing and half-close) that no other file covered.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from conftest import wait_gone

from rcmd import ConnectionClosed, connect
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Exit, Hello, Run, Stdout, decode_message, encode_message

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "docs" / "PROTOCOL.md"

#: (section, a phrase of the sentence holding the MUST) -> the tests that check it.
MUSTS: dict[tuple[str, str], list[str]] = {
    ("2", "MUST read exactly `length` payload bytes"): [
        "test_framing.py::test_any_split_into_recv_chunks_gives_the_same_frames",
        "test_vectors.py::test_each_exchange_replays_in_both_roles",
    ],
    ("2", "MUST check the length against its limit"): [
        "test_framing.py::test_oversized_prefix_is_refused_before_any_payload_is_buffered",
        "test_framing.py::test_one_byte_over_the_limit_is_refused_with_the_exact_reason",
    ],
    ("2", "A client MUST accept frames of at least"): [
        "test_end_to_end.py::test_200_mib_arrives_intact_while_server_memory_stays_bounded",
    ],
    ("2", "A client that got one MUST send each STDIN and FILE_DATA chunk"): [
        "test_frame_limit.py::test_a_client_facing_an_announced_limit_sends_chunks_that_fit",
        "test_frame_limit.py::test_a_1_mib_input_goes_through_run",
        "test_frame_limit.py::test_a_put_of_a_1_mib_file",
    ],
    ("3", "a client MUST NOT send an extension's message"): [
        "test_protocol.py::test_a_client_sends_no_extension_the_server_did_not_list",
        "test_protocol.py::test_a_client_asks_for_no_pty_from_a_server_without_the_extension",
    ],
    ("3", "A sender MUST NOT repeat a key"): [
        "test_messages.py::test_a_repeated_key_takes_its_last_value",
        "test_messages.py::test_we_never_send_a_repeated_key",
    ],
    ("3", "MUST ignore keys they do not know"): [
        "test_messages.py::test_unknown_fields_are_ignored_for_forward_compatibility",
    ],
    ("3", "MUST reject a body that is not a UTF-8 JSON object"): [
        "test_messages.py::test_malformed_payloads_say_what_is_wrong",
    ],
    ("3", "a receiver MUST also reject a body that"): [
        "test_validation.py::test_garbage_gets_an_error_with_the_reason_then_the_close",
        "test_hostile_json.py::test_a_body_at_the_limit_passes_and_one_token_more_is_refused",
        "test_hostile_json.py::test_an_ls_answer_is_not_bound",
    ],
    ("4", "Each side's first message MUST be"): [
        "test_protocol.py::test_first_message_must_be_hello",
        "test_protocol.py::test_anything_before_the_peers_hello_is_refused",
    ],
    ("4", "MUST NOT send anything after its HELLO until it has received AUTH_OK"): [
        "test_protocol.py::test_nothing_but_the_handshake_before_auth_ok",
        "test_security.py::test_commands_sent_before_authentication_never_run",
    ],
    ("4", "A server MUST silently drop"): [
        "test_protocol.py::test_late_client_messages_crossing_exit_are_dropped",
    ],
    ("4", "the receiver MUST"): [
        "test_protocol.py::test_error_ends_the_conversation_both_ways",
        "test_protocol.py::test_after_receiving_error_further_messages_are_dropped",
    ],
    ("4", "A server MUST treat"): ["test_spec.py::test_4_7_a_half_close_is_a_close"],
    ("4", "A client MUST treat end-of-stream"): [
        "test_spec.py::test_4_7_the_client_takes_end_of_stream_as_the_end"
    ],
    ("4c", "a client MUST refuse fewer than 4096"): [
        "test_accounts.py::test_too_few_rounds_are_refused",
        "test_aio.py::test_scram_handshake_with_messages_only",
    ],
    ("5", "a server MUST NOT run a full shell parse"): ["test_validation.py::test_the_cd_grammar"],
    ("5d", "A client MUST NOT send COMPLETE to a server"): [
        "test_messages_complete.py::test_a_client_asks_no_completion_of_a_server_without_the_extension",
        "test_messages_complete.py::test_no_completion_before_authentication",
        "test_messages_complete.py::test_complete_only_while_idle",
        "test_complete_server.py::test_an_older_server_is_not_asked",
        "test_complete_server.py::test_no_completion_before_authentication",
    ],
    ("5d", "A server MUST send at most 1000 items"): [
        "test_complete_server.py::test_limits_on_items_and_bytes_with_truncated",
    ],
    ("5d", "A receiver MUST reject a COMPLETIONS over either"): [
        "test_messages_complete.py::test_malformed_completion_payloads_say_exactly_what_is_wrong",
    ],
    ("5d", "A server MUST answer without holding up"): [
        "test_complete_server.py::test_a_listing_runs_off_the_event_loop",
        "test_complete_server.py::test_the_scan_is_bounded",
    ],
    ("5d", "A server MUST NOT pass `text` to a shell"): [
        "test_complete_server.py::test_the_word_never_reaches_a_shell",
    ],
}


def spec_musts() -> list[tuple[str, str]]:
    """(section, sentence) for every MUST in the spec, but the key-words paragraph."""
    found = []
    section = "0"
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{2,3} (\d+[a-z]?)\.", line)
        if heading:
            section = heading.group(1)
        if "MUST" in line and section != "0":
            found.append((section, line))
    return found


def test_every_must_in_the_spec_has_a_test():
    text = " ".join(SPEC.read_text(encoding="utf-8").split())
    for (section, phrase), tests in MUSTS.items():
        assert phrase in text, f"§{section}: the spec no longer says {phrase!r}"
        assert tests, phrase
    for section, line in spec_musts():
        # A MUST sentence may wrap: its entry's phrase starts on this line or just before it.
        covered = [
            p for (s, p) in MUSTS if s == section and (p in line or line.strip()[:30] in p or p[:25] in line)
        ]
        assert covered, f"§{section}: no test named for: {line.strip()}"


def test_every_named_test_exists():
    for tests in MUSTS.values():
        for name in tests:
            path, function = name.split("::")
            source = (ROOT / "tests" / path).read_text(encoding="utf-8")
            assert re.search(rf"^(async )?def {function}\(", source, re.M), name


def test_4_7_a_half_close_is_a_close(server):
    """§4 item 7: a server MUST treat end-of-stream from the client exactly as a close: the
    running command is killed, and the server closes its side too, without an EXIT."""
    with socket.create_connection(server.address, timeout=30) as sock:
        for message in (Hello(), Run("echo $$; exec sleep 1000")):
            sock.sendall(encode_frame(encode_message(message)))
        framer, messages = LengthPrefixFramer(), []
        half_closed = False
        while True:
            chunk = sock.recv(65536)
            framer.receive_data(chunk)
            while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
                messages.append(decode_message(frame))
            if not chunk:
                break
            if not half_closed and any(isinstance(m, Stdout) for m in messages):
                sock.shutdown(socket.SHUT_WR)  # the command runs; half-close: we could still read
                half_closed = True
    assert half_closed
    assert isinstance(messages[0], Hello)
    stdout = b"".join(m.data for m in messages if isinstance(m, Stdout))
    assert not any(isinstance(m, Exit) for m in messages)
    assert wait_gone(int(stdout.split()[0]))


def test_4_7_the_client_takes_end_of_stream_as_the_end():
    """§4 item 7: a client MUST treat end-of-stream from the server as the end of the
    connection: a server that half-closes after its HELLO and a RUN leaves the client with
    ConnectionClosed, not a hang."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(encode_frame(encode_message(Hello(encoding="utf-8", cwd="/"))))
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(4096):  # read until the client closes
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with listener:
        client = connect(*listener.getsockname()[:2], connect_timeout=30)
        with pytest.raises(ConnectionClosed):
            client.run("true")
        client.close()
    thread.join(30)
    assert not thread.is_alive()
