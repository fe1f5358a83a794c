"""Host sets as ClusterShell's NodeSet writes them: ``web[01-20]:9000,db1``. Pure functions.

``unfold("web[01-03]:9000,db1")`` -> ``["web01:9000", "web02:9000", "web03:9000", "db1"]``;
``fold(["web01", "web02", "web03", "web07"])`` -> ``"web[01-03,07]"``. ``fold(unfold(s))``
names the same hosts as *s*, and ``unfold(fold(hosts))`` gives *hosts* back, sorted.

Grammar: items separated by commas outside brackets; in an item, ``[RANGES]`` (digits, ``-``
and ``,`` only) expands to each number, zero-padded as written (``[08-10]`` gives 08, 09, 10),
and several brackets multiply out (``r[1-2]n[1-2]``). A bracket holding anything else is kept
as written, so ``[::1]:9000`` is an IPv6 address with a port. :func:`split_port` then splits
an unfolded host into (host, port).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["HostSetError", "fold", "read_host_file", "split_port", "unfold", "unfold_all"]

#: A bracket that expands: numbers and ranges only, e.g. ``[01-20,31]``.
_RANGE_BRACKET = re.compile(r"\[([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)\]")
_DIGITS = re.compile(r"([0-9]+)")
#: One item may expand to at most this many hosts: a typo such as ``[1-1000000]`` is refused
#: before it allocates a list of a million names.
MAX_HOSTS = 100_000


class HostSetError(ValueError):
    """A host set that cannot be read: an unbalanced bracket, a range that runs backwards."""


def _split_items(spec: str) -> list[str]:
    """*spec* cut at the commas outside brackets; empty items dropped."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(spec):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostSetError(f"unbalanced ']' in {spec!r}")
        elif char == "," and depth == 0:
            items.append(spec[start:index])
            start = index + 1
    if depth != 0:
        raise HostSetError(f"unbalanced '[' in {spec!r}")
    items.append(spec[start:])
    return [item.strip() for item in items if item.strip()]


def _expand_ranges(ranges: str, spec: str) -> list[str]:
    values: list[str] = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        high = high or low
        if int(high) < int(low):
            raise HostSetError(f"range {part!r} runs backwards in {spec!r}")
        width = len(low) if low.startswith("0") and len(low) > 1 else 0
        if int(high) - int(low) + len(values) >= MAX_HOSTS:
            raise HostSetError(f"{spec!r} names more than {MAX_HOSTS} hosts")
        values.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    return values


def _expand_item(item: str) -> list[str]:
    pieces = _RANGE_BRACKET.split(item)  # text, ranges, text, ranges, ..., text
    choices = [[piece] if i % 2 == 0 else _expand_ranges(piece, item) for i, piece in enumerate(pieces)]
    total = 1
    for choice in choices:
        total *= len(choice)
    if total > MAX_HOSTS:
        raise HostSetError(f"{item!r} names more than {MAX_HOSTS} hosts")
    return ["".join(parts) for parts in itertools.product(*choices)]


def unfold(spec: str) -> list[str]:
    """Every host *spec* names, in the order written, each once. Raises HostSetError."""
    return unfold_all([spec])


def unfold_all(specs: Iterable[str]) -> list[str]:
    """The hosts of several specs (several ``-H``), in order, each once."""
    hosts: dict[str, None] = {}
    for spec in specs:
        for item in _split_items(spec):
            for host in _expand_item(item):
                hosts.setdefault(host, None)
    return list(hosts)


def read_host_file(path: str | Path) -> list[str]:
    """The host specs in a file: one a line, blank lines and ``#`` comments ignored.
    Raises OSError if it cannot be read."""
    specs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            specs.append(line)
    return specs


# ------------------------------------------------------------------------------ folding


def _padding(token: str) -> int:
    """The width a number is padded to: its length if it starts with 0, else 0 (none)."""
    return len(token) if token.startswith("0") and len(token) > 1 else 0


def _format_ranges(tokens: list[str], width: int) -> str:
    numbers = sorted({int(token) for token in tokens})
    parts = []
    for _, run in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        block = [n for _, n in run]
        low, high = str(block[0]).zfill(width), str(block[-1]).zfill(width)
        parts.append(low if len(block) == 1 else f"{low}-{high}")
    return ",".join(parts)


def _fold_position(hosts: list[list[str]], position: int) -> list[str]:
    """Fold hosts of one shape (text and numbers alternating, see fold) on one number."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for tokens in hosts:
        key = (*tokens[:position], *tokens[position + 1 :])
        groups.setdefault(key, []).append(tokens[position])
    folded = []
    for key, numbers in groups.items():
        before, after = "".join(key[:position]), "".join(key[position:])
        # Bucket by padding; an unpadded number as wide as a padded bucket reads the same there.
        buckets: dict[int, list[str]] = {}
        for number in numbers:
            buckets.setdefault(_padding(number), []).append(number)
        for number in list(buckets.get(0, [])):
            if len(number) in buckets and len(number) > 1:
                buckets[0].remove(number)
                buckets[len(number)].append(number)
        for width, members in sorted(buckets.items()):
            if not members:
                continue
            if len(set(members)) == 1:
                folded.append(before + members[0] + after)
            else:
                folded.append(f"{before}[{_format_ranges(members, width)}]{after}")
    return folded


def fold(hosts: Iterable[str]) -> str:
    """The shortest-looking host set naming exactly *hosts* (order and repeats ignored).

    Hosts are grouped by shape (the same text around the same count of numbers); in each
    group one number position is folded into ``[ranges]``: the one that leaves fewest
    groups, the last on a tie (``web[01-03]:9000`` rather than ``web01:[9000]``). Names
    with brackets or commas of their own are kept whole.
    """
    shapes: dict[tuple[str, ...], list[list[str]]] = {}
    plain: list[str] = []
    for host in sorted(set(hosts)):
        if any(char in host for char in "[],"):
            plain.append(host)
            continue
        tokens = _DIGITS.split(host)  # text, digits, text, ..., text
        shape = tuple(tokens[0::2])
        shapes.setdefault(shape, []).append(tokens)
    folded: list[str] = list(plain)
    for group in shapes.values():
        positions = range(1, len(group[0]), 2)
        if not positions:
            folded.extend("".join(tokens) for tokens in group)
            continue
        best: list[str] | None = None
        for position in positions:
            candidate = _fold_position(group, position)
            if best is None or len(candidate) <= len(best):
                best = candidate
        assert best is not None
        folded.extend(best)
    return ",".join(sorted(folded, key=_natural_key))


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    return [(1, int(token)) if token.isdigit() else (0, token) for token in _DIGITS.split(text) if token]


def split_port(host: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, a bare IPv6 address or a name -> (host, port).
    Raises HostSetError for a port that is not a number."""
    name, port = host, ""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, port = host.split(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise HostSetError(f"bad port {port!r} in {host!r}")
    if not name:
        raise HostSetError(f"no host name in {host!r}")
    return name, int(port) if port else default_port
