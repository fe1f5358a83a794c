"""rcmd.hostset: ClusterShell-style host sets, folded and unfolded, with strings only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcmd.hostset import HostSetError, fold, read_host_file, split_port, unfold, unfold_all

UNFOLD_CASES = [
    ("web1", ["web1"]),
    ("a,b , c,,", ["a", "b", "c"]),
    ("web[01-03]", ["web01", "web02", "web03"]),
    ("web[01-03]:9000", ["web01:9000", "web02:9000", "web03:9000"]),
    ("127.0.0.[1-4]", ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("n[1,3,5-6]", ["n1", "n3", "n5", "n6"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("a[1-2],b,a1", ["a1", "a2", "b"]),  # each host once, in the order first written
    ("[::1]:9000,[::1]:9001", ["[::1]:9000", "[::1]:9001"]),  # an IPv6 literal is not a range
    ("127.0.0.1:[9000-9001]", ["127.0.0.1:9000", "127.0.0.1:9001"]),
]


@pytest.mark.parametrize(("spec", "hosts"), UNFOLD_CASES)
def test_unfold(spec, hosts):
    assert unfold(spec) == hosts


FOLD_CASES = [
    (["web01", "web02", "web03", "web07"], "web[01-03,07]"),
    (["web1"], "web1"),
    (["web01:9000", "web02:9000"], "web[01-02]:9000"),
    (["127.0.0.1:9001", "127.0.0.1:9000", "127.0.0.1:9003"], "127.0.0.1:[9000-9001,9003]"),
    (["n9", "n10", "n11"], "n[9-11]"),
    (["n09", "n10"], "n[09-10]"),  # 10 is as wide as the padding: it joins the padded range
    (["n1", "n01"], "n1,n01"),  # different names: never folded into one range
    (["b", "a", "a"], "a,b"),
    (["db1", "web2", "web1"], "db1,web[1-2]"),
    (["[::1]:9000"], "[::1]:9000"),
    (["r1n1", "r1n2", "r2n1", "r2n2"], "r1n[1-2],r2n[1-2]"),
]


@pytest.mark.parametrize(("hosts", "spec"), FOLD_CASES)
def test_fold(hosts, spec):
    assert fold(hosts) == spec
    assert sorted(unfold(spec)) == sorted(set(hosts))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("web[1-3", "unbalanced"),
        ("web]1", "unbalanced"),
        ("n[5-1]", "backwards"),
        ("n[1-1000000]", "more than"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(HostSetError, match=match):
        unfold(spec)


def test_several_specs_and_a_host_file(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("# the web tier\nweb[1-2]\n\n  db1  # primary\n")
    assert read_host_file(path) == ["web[1-2]", "db1"]
    assert unfold_all(["x", *read_host_file(path), "web1"]) == ["x", "web1", "web2", "db1"]


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("web1", ("web1", 9000)),
        ("web1:22", ("web1", 22)),
        ("[::1]:9001", ("::1", 9001)),
        ("::1", ("::1", 9000)),
        ("[::1]", ("::1", 9000)),
    ],
)
def test_split_port(host, address):
    assert split_port(host, 9000) == address


@pytest.mark.parametrize("host", ["web1:http", "web1:0", "web1:70000", ":22"])
def test_split_port_refuses(host):
    with pytest.raises(HostSetError):
        split_port(host, 9000)


NAME = st.from_regex(r"[a-c]{0,2}[0-9]{0,3}(\.[0-9]{1,2})?(:[0-9]{1,4})?", fullmatch=True).filter(bool)


@given(st.lists(NAME, max_size=40))
def test_unfold_of_fold_gives_the_hosts_back(hosts):
    assert sorted(unfold(fold(hosts))) == sorted(set(hosts))


@given(st.lists(NAME, max_size=40))
def test_fold_is_stable(hosts):
    spec = fold(hosts)
    assert fold(unfold(spec)) == spec
