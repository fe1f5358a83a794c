"""mutmut on the transports (server, client, CLI), whose tests run rcmd in subprocesses.

Not part of `make mutate`: each mutant runs real servers, so a module takes tens of minutes.

mutmut learns which tests reach a function by recording calls in the test process, and runs
each mutant against those tests only. A server started as a subprocess records nothing, so
every server mutant would come out "no tests". This wraps mutmut's stats collection so that
every mutated function counts as reached by every selected test: each mutant then runs the
whole selection, stopping at the first failure (a survivor costs the whole selection).
The subprocesses do run the mutant: the tests run from mutants/, which Python puts first on
a child's path, and the child inherits MUTANT_UNDER_TEST.

    python scripts/mutmut_transports.py --mutate rcmd/server/command.py --tests tests/test_end_to_end.py
    python scripts/mutation_report.py --module rcmd.server.command

With --per-test, mutmut's own per-test selection is kept: for modules whose tests run them
in the test process (make mutate-rest: the server's config and cd, the console, against a
server in a thread), which is far quicker, as each mutant runs only the tests that reach it.

It replaces mutants/ (make mutate starts it afresh too), unless --keep: then mutmut keeps
what it found before and tests only mutants without a result, and those named (globs, as
`mutmut run` takes them), e.g. after a test was added for them::

    python scripts/mutmut_transports.py --per-test --keep --mutate ... --tests ... 'rcmd.server.session.*'

Relies on mutmut 3.8's internals.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import mutmut.__main__ as mutmut_main
from mutmut.configuration import config
from mutmut.state import state
from mutmut.utils.format_utils import mangled_name_from_mutant_name
from mutmut.workers.isolation import ForkRunner, MutantResult, get_mutant_runner


def wait_for_a_mutant(self: ForkRunner, timeout: float | None = None) -> MutantResult:
    """ForkRunner.wait_for_result(), skipping children that are not mutant runs.

    mutmut's os.wait() reaps any child, and this process has others: the stats run executes
    the tests in it, and a command they started can end after them (its zombie is this
    process's). mutmut then stopped with a KeyError on that pid, every mutant unchecked.
    """
    if self._no_tests_results:
        return self._no_tests_results.pop(0)
    while True:
        pid, wait_status = os.wait()
        worker = self._running.pop(pid, None)
        if worker is not None:
            break
    duration = (datetime.now() - worker.start_time).total_seconds()
    exit_code = os.waitstatus_to_exitcode(wait_status)
    return MutantResult(mutant_name=worker.mutant_name, exit_code=exit_code, duration=duration)


#: Functions that run for ever on a thread of their own, started by the first test that needs
#: one: mutmut records them as reached by that test alone, though every test that hands them
#: work (through the function named here) runs them, in each forked run anew. Each counts as
#: reached by those tests (--per-test). Work a test waits for on a pool thread
#: (asyncio.to_thread, run_in_executor: the server's completion, FS ls) needs no entry: mutmut
#: records calls in one set for the whole process, emptied at each test's teardown, so the
#: thread's calls count for the test that was running.
THREAD_TARGETS = {
    "rcmd.process.x__serve_scans": "rcmd.process.x_scan_in_thread",
    "rcmd.process.x__serve_spawns": "rcmd.process.x_spawn_in_thread",
}
#: Functions that run in a forked child before it execs (a preexec_fn): mutmut's record of the
#: call stays in the child, so none is reached by any test; each counts as reached by the
#: tests that reach the function that spawns it (--per-test). A mutant of one still runs in
#: the child (it inherits MUTANT_UNDER_TEST), and one that raises there fails the Popen.
CHILD_FUNCTIONS = {
    "rcmd.server.pty.x__take_controlling_terminal": "rcmd.server.pty.x_spawn_pty",
}


def mutated_functions() -> set[str]:
    """The functions mutmut made mutants of, as its stats name them."""
    names = set()
    for meta in Path("mutants").rglob("*.py.meta"):
        for key in json.loads(meta.read_text())["exit_code_by_key"]:
            names.add(mangled_name_from_mutant_name(key))
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutate", action="append", required=True, help="a file (or glob) to mutate")
    parser.add_argument("--tests", action="append", required=True, help="a test file or node id to run")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--per-test", action="store_true", help="the tests run the code in-process")
    parser.add_argument(
        "--timeout-multiplier",
        type=float,
        default=15.0,
        help="a mutant's wall-clock limit is (its tests' time + 1) * this * 2 (mutmut's default: 15;"
        " lower, a loaded machine turns slow runs into false kills, as timeouts count as detected)",
    )
    parser.add_argument("--keep", action="store_true", help="keep mutants/ and the results in it")
    parser.add_argument("names", nargs="*", help="(with --keep) mutants to test again, globs allowed")
    args = parser.parse_args()

    ForkRunner.wait_for_result = wait_for_a_mutant  # type: ignore[method-assign]
    if not args.keep:
        shutil.rmtree("mutants", ignore_errors=True)
    config().only_mutate = args.mutate
    config().pytest_add_cli_args_test_selection = args.tests
    config().timeout_multiplier = args.timeout_multiplier
    sys.argv = ["mutmut", "run", "--max-children", str(args.max_children), *args.names]

    def runner_reaching_everything(*a: Any, **kw: Any) -> Any:
        runner = get_mutant_runner(*a, **kw)
        collect = runner.collect_stats

        def collect_stats(tests: Iterable[str] | None) -> int:
            code = collect(tests)
            reached = state().tests_by_mangled_function_name
            if args.per_test:
                for target, starter in {**THREAD_TARGETS, **CHILD_FUNCTIONS}.items():
                    reached[target] |= reached[starter]
                return code
            every_test = set(state().duration_by_test)
            for name in mutated_functions():
                reached[name] |= every_test
            return code

        runner.collect_stats = collect_stats  # type: ignore[method-assign]
        return runner

    setattr(mutmut_main, "get_mutant_runner", runner_reaching_everything)  # noqa: B010 - not exported
    mutmut_main.cli()  # exits
    return 0


if __name__ == "__main__":
    sys.exit(main())
