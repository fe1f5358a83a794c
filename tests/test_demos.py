"""Every demo runs, and says what it should: naive wrong in each case, prefixed never."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import defaultdict

import pytest
from rich.console import Console

import rcmd
from rcmd import demo


@pytest.fixture(scope="module")
def scenes():
    with (
        rcmd.BackgroundServer(framing="naive", encoding="utf-8", cwd="/") as naive,
        rcmd.BackgroundServer(encoding="utf-8", cwd="/") as prefixed,
    ):
        return demo.build_scenes(naive.address, prefixed.address)


def test_compare_modes_naive_is_wrong_in_every_case_and_prefixed_never(scenes):
    cases = defaultdict(list)
    for scene in scenes:
        for row in scene.rows:
            cases[row.case].append(row)
    assert sorted(cases) == [1, 2, 3, 4]
    for case, rows in cases.items():
        assert any(not row.naive_ok for row in rows), f"case {case}: naive was never wrong"
        assert all(row.prefixed_ok for row in rows), f"case {case}: prefixed was wrong"

    # What the cases show, precisely.
    seq, hello = cases[1]
    assert len(seq.naive_reply) == 1024
    assert seq.expected_stdout.startswith(seq.naive_reply)
    assert hello.naive_reply == seq.expected_stdout[1024:] + b"hello\n"
    assert cases[2][0].naive_reply == b"err\nout\n"
    assert [row.naive_reply for row in cases[3]] == [b"aecho b\n", None]
    utf8, gbk = cases[4]
    assert utf8.naive_text.endswith("x\ufffd")
    assert gbk.naive_text.endswith("x\ufffd")
    assert utf8.prefixed_text.endswith("中文\n")
    assert gbk.prefixed_text.endswith("中文\n")
    # The command waits on stdin after the x's and after 中's first byte: a chunk ends there.
    assert utf8.prefixed_chunks == [b"x" * 1023, b"\xe4", b"\xb8\xad\xe6\x96\x87\n"]
    assert gbk.prefixed_chunks == [b"x" * 1023, b"\xd6", b"\xd0\xce\xc4\n"]
    assert "\ufffd" in "".join(c.decode("utf-8", "replace") for c in utf8.prefixed_chunks)

    console = Console(file=io.StringIO(), width=120, record=True)
    correct = demo.render(console, scenes)
    text = console.export_text()
    assert correct == {"naive": 0, "prefixed": 7}
    assert "\nnaive: 0/7 correct\n" in text
    assert "\nprefixed: 7/7 correct\n" in text
    assert "aecho b" in text
    assert "┃" in text


def test_the_picture_draws_each_length_prefix_and_marks_reads_apart(scenes):
    lanes = {
        (scene.case, stream.title): demo.draw_stream(stream).plain
        for scene in scenes
        for stream in scene.streams
    }
    # Each prefixed frame: [ its 4 length bytes, its type, its body ]; 0x5d5 = 1 + 1492 bytes of seq.
    assert lanes[1, "prefixed"].startswith("[00 00 05 d5‹out›1⏎2⏎")
    assert lanes[1, "prefixed"].count("[") == lanes[1, "prefixed"].count("]") == 4
    assert "[00 00 00 07‹out›hello⏎]" in lanes[1, "prefixed"]
    # stderr's frame comes first, as the command wrote it, on every run.
    assert lanes[2, "prefixed"].startswith("[00 00 00 05‹err›err⏎][00 00 00 05‹out›out⏎][")
    assert lanes[3, "prefixed"].startswith('[00 00 00 2c‹run›{"command":"echo a",…}]')
    assert lanes[4, "prefixed"].startswith("[00 00 04 00‹out›xxxxx…xxxxx][00 00 00 02‹out› e4]")
    # A naive recv() is marked with another glyph than a frame's end: no colour needed.
    assert lanes[1, "naive"] == "1⏎2⏎3…⏎283⏎┃284⏎2…⏎400⏎hello⏎┃"
    assert lanes[2, "naive"] == "err⏎out⏎┃"
    assert not any(mark in lanes[1, "naive"] for mark in "[]")
    assert "┃" not in lanes[1, "prefixed"]


def test_the_legend_says_how_each_case_is_forced(scenes):
    console = Console(file=io.StringIO(), width=120, record=True, no_color=True)
    demo.render(console, scenes)
    text = console.export_text()
    for words in ("naive ok?", "prefixed ok?", "lane", "SO_RCVLOWAT", "FIFO", "stdin", "4-byte length"):
        assert words in text


def test_committed_svg_is_a_fresh_render_and_needs_no_network(scenes):
    committed = (demo_root() / "docs" / "demo.svg").read_text(encoding="utf-8")
    fresh = demo.render_svg(scenes)
    assert fresh == committed, (
        "docs/demo.svg is not what the demo draws now: run `make demo-svg` and commit it\n"
        + demo.svg_difference(committed, fresh)
    )
    assert "url(http" not in fresh
    assert "@font-face" not in fresh
    assert "monospace" in fresh


def test_a_second_run_in_the_same_process_draws_the_same(scenes):
    # Nothing carries over from one run to the next (colours once came from a global counter).
    with (
        rcmd.BackgroundServer(framing="naive", encoding="utf-8", cwd="/") as naive,
        rcmd.BackgroundServer(encoding="utf-8", cwd="/") as prefixed,
    ):
        again = demo.build_scenes(naive.address, prefixed.address)
    assert demo.render_svg(again) == demo.render_svg(scenes)


def test_make_demo_entry_point_and_svg(tmp_path):
    svg = tmp_path / "demo.svg"
    proc = subprocess.run(
        [sys.executable, "demos/compare_modes.py", "--svg", str(svg)],
        capture_output=True,
        timeout=120,
        cwd=demo_root(),
    )
    assert proc.returncode == 0, proc.stderr
    assert b"prefixed: 7/7 correct" in proc.stdout
    assert svg.read_text().startswith("<svg")


def test_rcmd_demo_from_the_cli():
    proc = subprocess.run([sys.executable, "-m", "rcmd", "demo"], capture_output=True, timeout=120)
    assert proc.returncode == 0
    assert b"naive: 0/7 correct" in proc.stdout


def demo_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def load_demo(name: str):
    import importlib.util

    path = demo_root() / "demos" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"demo_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_read_demo():
    result = load_demo("short_read").main()
    assert result["first_recv"] < result["frame"]  # one recv() did not return the message
    assert len(result["reads"]) >= 2
    assert sum(result["reads"]) == result["frame"]
    assert result["intact"]  # the framer put it back together


def test_nodelay_demo_receiver_coalesces_either_way():
    result = load_demo("nodelay").main()
    assert result[False]["one_recv"] == result[True]["one_recv"] == b"himeinv"


def test_udp_demo_keeps_boundaries_and_truncates():
    result = load_demo("udp_boundaries").main()
    assert result["received"] == [(2, False), (5, False), (1024, True)]


def test_length_then_ack_demo_delivers_every_reply():
    result = load_demo("length_then_ack").main(rounds=20)  # each reply is checked inside
    assert result["ack"] > 0
    assert result["prefix"] > 0


def test_json_header_demo_files_arrive_exactly():
    result = load_demo("json_header").main()
    assert result["intact"]
    assert result["names"] == ["notes.txt", "empty.bin", "data.bin"]
