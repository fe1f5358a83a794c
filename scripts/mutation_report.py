"""Summarise a `mutmut run`: killed/total per module, with the equivalent mutants set apart.

An equivalent mutant changes the code but not what it does (``False`` -> ``None`` where only
the truth of the value is read), so no test can kill it. Those known here are listed in
EQUIVALENT with the reason; the score leaves them out. A listed one that is no longer a
survivor is reported as stale (mutmut numbers mutants within a function: after an edit there,
look again), and every other survivor is listed, for a test to kill it.

Usage (after `mutmut run`; make mutate does both)::

    python scripts/mutation_report.py [--fail-under PERCENT] [--module PREFIX ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict

EQUIVALENT: dict[str, str] = {
    # A flag set to None instead of False: it is only ever read as a truth value.
    "rcmd.framing.xǁLengthPrefixFramerǁ__init____mutmut_11": "_eof = None: read only as a truth value",
    "rcmd.framing.xǁNaiveFramerǁ__init____mutmut_8": "_eof = None: read only as a truth value",
    "rcmd.protocol.xǁConnectionǁ__init____mutmut_15": "_hello_sent = None: read only as a truth value",
    "rcmd.protocol.xǁConnectionǁ__init____mutmut_17": "_error_sent = None: read only as a truth value",
    "rcmd.protocol.xǁConnectionǁ_check_stdin__mutmut_7": "_stdin_open = None: read only as a truth value",
    "rcmd.messages.x_encode_message_parts__mutmut_17": "ensure_ascii=None: json reads it as a truth value",
    # Slices: view[None:n] is view[0:n], and view[1:0] is as empty as view[0:0].
    "rcmd.framing.xǁLengthPrefixFramerǁnext_frame__mutmut_2": "_take(None, n): a slice from None is from 0",
    "rcmd.framing.xǁLengthPrefixFramerǁnext_frame_split__mutmut_3": "_take(None, 0): a slice from None is from 0",
    "rcmd.framing.xǁLengthPrefixFramerǁnext_frame_split__mutmut_7": "_take(1, 0): [1:0] is empty like [0:0]",
    # Codec names are looked up case-insensitively, and final=False is decode()'s default.
    "rcmd.decoding.x_guess_encoding__mutmut_4": "decode(sample) without final=False: the default",
    "rcmd.decoding.x_guess_encoding__mutmut_7": '"UTF-8" for "utf-8": the same codec',
    "rcmd.messages.x_encode_message_parts__mutmut_26": '"UTF-8" for "utf-8": the same codec',
    "rcmd.messages.x__parse_json_body__mutmut_6": '"UTF-8" for "utf-8": the same codec',
    "rcmd.auth.x_load_secret__mutmut_24": '"UTF-8" for "utf-8": the same codec',
}

DETECTED = {"killed", "timeout"}  # a hang under a mutant is a test that noticed it


def module_of(mutant: str) -> str:
    """``rcmd.framing.xǁLengthPrefixFramerǁ__init____mutmut_11`` -> ``rcmd.framing``."""
    return mutant.split(".x", 1)[0]


def read_results() -> dict[str, str]:
    """Mutant name -> status, as `mutmut results --all true` prints them."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    results = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("rcmd."):
            results[name] = status
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 below this score (percent)")
    parser.add_argument("--module", action="append", default=[], help="only modules starting with this")
    args = parser.parse_args()

    results = {
        name: status
        for name, status in read_results().items()
        if not args.module or any(module_of(name).startswith(m) for m in args.module)
    }
    if not results:
        print("no mutmut results: run `mutmut run` first")
        return 1
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results.items():
        counts = by_module[module_of(name)]
        counts["total"] += 1
        if name in EQUIVALENT and status not in DETECTED:
            counts["equivalent"] += 1
        elif status in DETECTED:
            counts["detected"] += 1

    print(f"{'module':<22}{'killed':>8}{'of':>6}{'score':>9}{'equivalent':>12}{'raw':>9}")
    sums: Counter[str] = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        sums.update(counts)
        print(row(module, counts))
    print(row("all", sums))

    survivors = sorted(n for n, s in results.items() if s not in DETECTED and n not in EQUIVALENT)
    stale = sorted(n for n in EQUIVALENT if n in results and results[n] in DETECTED)
    for name in survivors:
        print(f"  not killed ({results[name]}): {name}   (mutmut show '{name}')")
    for name in stale:
        print(f"  listed as equivalent but now {results[name]}: {name}: update EQUIVALENT")
    score = score_of(sums)
    if score < args.fail_under:
        print(f"mutation score {score:.1f}% is under {args.fail_under:.0f}%")
        return 1
    return 0


def score_of(counts: Counter[str]) -> float:
    """Detected mutants as a percentage of those a test could detect (equivalents left out)."""
    killable = counts["total"] - counts["equivalent"]
    return 100.0 * counts["detected"] / killable if killable else 100.0


def row(label: str, counts: Counter[str]) -> str:
    killable = counts["total"] - counts["equivalent"]
    raw = 100.0 * counts["detected"] / counts["total"]
    return (
        f"{label:<22}{counts['detected']:>8}{killable:>6}{score_of(counts):>8.1f}%"
        f"{counts['equivalent']:>12}{raw:>8.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
