# make demo: set up .venv with rcmd alone (no test tools) and run the side-by-side demo.
# make demo-svg: redraw docs/demo.svg from a fresh run (tests/test_demos.py checks it is one).
# make test: set up .venv with the test and lint tools, run every test, print branch coverage.
# make lint: ruff (lint and format) and mypy (strict), as CI runs them before the tests.
# make mutate: mutation testing (mutmut) of the sans-I/O core against its bytes-only tests; fails
#   under 90% of mutants killed. 2-4 minutes here; not in CI (nor is make mutate-rest, about 1.5 hours).
# make mutate-rest: the same for the parts whose tests run in-process (the server's config, cd,
#   session, command, listener, completion, files, TLS, accounts, PTY and lifecycle,
#   rcmd.process, rcmd.cgroup, rcmd.naive, the console) against tests/test_mut_*.py, a BackgroundServer over real
#   sockets; fails under 80%. About an hour and a half on 2 cores. The client and the CLI are
#   tested through subprocesses: scripts/mutmut_transports.py, by hand.
# Set-up downloads packages from the package index the first time (and when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: test test-cross demo demo-svg lint bench vectors mutate mutate-rest clean

$(VENV)/.created:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "rcmd needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)
	touch $@

$(VENV)/.installed-demo: pyproject.toml $(VENV)/.created
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[test,lint,ansible]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[test,lint,ansible,bench]'
	touch $@

$(VENV)/.installed-mutate: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[test,mutate]'
	touch $@

# What differs between Python versions is asyncio, subprocesses, terminals and the standard
# library under rcmd.records: CI runs these on every other Python it finds (the whole suite
# runs on the default one). Docs, vectors, benchmarks, Ansible and the pure property tests
# of the core do not depend on the interpreter's version in ways these would not show.
CROSS_VERSION_TESTS := tests/test_end_to_end.py tests/test_security.py tests/test_security_stdin.py \
	tests/test_security_tls.py tests/test_tls.py tests/test_tls_off_loop.py tests/test_hostile.py tests/test_hostile_fairness.py \
	tests/test_interrupts.py tests/test_process_tree.py tests/test_spawn.py tests/test_scan_off_loop.py \
	tests/test_mut_server.py tests/test_mut_process.py tests/test_mut_listener.py tests/test_aio.py tests/test_listener.py \
	tests/test_records.py tests/test_oneshot.py tests/test_terminal.py tests/test_files.py \
	tests/test_naive.py tests/test_client_core.py tests/test_framing.py

$(VENV)/.installed-cross: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[test]'
	touch $@

# make test-cross PYTHON=python3.12 VENV=.venv-3.12: the tests above, without coverage.
test-cross: $(VENV)/.installed-cross
	$(BIN)/python -m pytest --durations=10 $(CROSS_VERSION_TESTS) $(PYTEST_ARGS)

test: $(VENV)/.installed-test
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest --durations=25 $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report

lint: $(VENV)/.installed-test
	$(BIN)/ruff check rcmd tests demos benchmarks docs scripts
	$(BIN)/ruff format --check rcmd tests demos benchmarks docs scripts
	$(BIN)/mypy

demo: $(VENV)/.installed-demo
	$(BIN)/python demos/compare_modes.py

demo-svg: $(VENV)/.installed-demo
	$(BIN)/python demos/compare_modes.py --svg docs/demo.svg > /dev/null

# From scratch each time: mutmut's own cache does not notice every change to the tests.
mutate: $(VENV)/.installed-mutate
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python scripts/mutation_report.py --fail-under 90

MUTATE_REST := rcmd/server/config.py rcmd/server/cd.py rcmd/console.py \
	rcmd/server/session.py rcmd/server/command.py rcmd/server/listener.py rcmd/process.py \
	rcmd/server/complete.py rcmd/server/files.py rcmd/server/tls.py rcmd/cgroup.py \
	rcmd/server/accounts.py rcmd/server/pty.py rcmd/server/lifecycle.py rcmd/naive.py
MUTATE_REST_TESTS := tests/test_mut_config.py tests/test_mut_cd.py tests/test_mut_console.py \
	tests/test_mut_server.py tests/test_mut_process.py tests/test_mut_listener.py \
	tests/test_mut_complete.py tests/test_mut_files.py tests/test_mut_tls.py tests/test_mut_cgroup.py \
	tests/test_mut_accounts.py tests/test_mut_pty.py tests/test_mut_lifecycle.py tests/test_mut_naive.py \
	tests/test_hostile_fairness.py
mutate-rest: $(VENV)/.installed-mutate
	$(BIN)/python scripts/mutmut_transports.py --per-test --max-children 2 $(MUTATE_REST:%=--mutate %) $(MUTATE_REST_TESTS:%=--tests %)
	$(BIN)/python scripts/mutation_report.py --fail-under 80

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py

vectors: $(VENV)/.installed-demo
	$(BIN)/python docs/vectors/generate.py

clean:
	rm -rf $(VENV) .venv-* mutants .pytest_cache .hypothesis .mypy_cache .ruff_cache .coverage .coverage.* rcmd.egg-info build
