"""rcmd.records makes what @dataclass(frozen=True, slots=True) makes: each test builds the
same class body both ways and compares."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys
from typing import Any, ClassVar  # noqa: F401 - dataclasses reads "ClassVar[int]" through this module

import pytest
from conftest import uncovered

from rcmd import messages, records


def both(
    body: dict[str, Any], annotations: dict[str, str], bases: tuple[type, ...] = ()
) -> tuple[type, type]:
    """The class (name Sample) made from *body* by dataclasses and by rcmd.records."""
    made = []
    for decorate, factory in (
        (dataclasses.dataclass(frozen=True, slots=True), dataclasses.field),
        (records.dataclass(frozen=True, slots=True), records.field),
    ):
        namespace = {
            name: factory(default_factory=value.default_factory) if isinstance(value, Factory) else value
            for name, value in body.items()
        }
        namespace["__annotations__"] = dict(annotations)
        namespace["__module__"] = __name__
        namespace["__qualname__"] = "Sample"
        made.append(decorate(type("Sample", bases, namespace)))
    return made[0], made[1]


class Factory:
    def __init__(self, default_factory: Any) -> None:
        self.default_factory = default_factory


SAMPLE_ANNOTATIONS = {
    "KIND": "ClassVar[int]",
    "command": "str",
    "count": "int",
    "env": "Mapping[str, str]",
    "note": "str | None",
}
SAMPLE_BODY: dict[str, Any] = {"KIND": 7, "count": 0, "env": Factory(dict), "note": None}


def test_a_record_is_built_called_and_shown_as_the_dataclass_is():
    real, record = both(SAMPLE_BODY, SAMPLE_ANNOTATIONS)
    assert str(inspect.signature(record)) == str(inspect.signature(real))
    assert record.__doc__ == real.__doc__
    assert record.__slots__ == real.__slots__
    assert record.__match_args__ == real.__match_args__
    assert record.KIND == 7
    for args, kwargs in [
        (("ls",), {}),
        (("ls", 3), {"note": "n"}),
        ((), {"command": "x", "env": {"A": "1"}}),
    ]:
        a, b = real(*args, **kwargs), record(*args, **kwargs)
        assert repr(a) == repr(b)
        assert [getattr(a, name) for name in real.__match_args__] == [
            getattr(b, name) for name in record.__match_args__
        ]
    with pytest.raises(TypeError):
        record()  # command is required, as for the dataclass
    with pytest.raises(TypeError):
        record("a", 1, {}, None, "one too many")


def test_records_compare_hash_copy_and_pickle_by_their_fields():
    _real, record = both(SAMPLE_BODY, SAMPLE_ANNOTATIONS)
    one, same, other = record("ls"), record("ls"), record("ls", 1)
    assert one == same
    assert one != other
    assert hash(messages.Exit(1, cwd="/")) == hash(messages.Exit(1, cwd="/"))
    with pytest.raises(TypeError, match="unhashable"):
        hash(one)  # its env is a dict: as the dataclass's hash, it fails
    assert one != ("ls", 0, {}, None)  # another type is never equal
    assert record("a").env is not record("b").env  # a fresh default from the factory
    assert pickle.loads(pickle.dumps(messages.Exit(3, cwd="/t"))) == messages.Exit(3, cwd="/t")
    assert copy.copy(one) == one


def test_a_record_is_frozen_and_has_no_dict():
    _real, record = both(SAMPLE_BODY, SAMPLE_ANNOTATIONS)
    sample = record("ls")
    with pytest.raises(records.FrozenInstanceError, match="cannot assign"):
        sample.command = "rm"
    with pytest.raises(records.FrozenInstanceError, match="cannot delete"):
        del sample.count
    with pytest.raises(AttributeError):
        sample.other = 1
    assert not hasattr(sample, "__dict__")


def test_init_is_compiled_on_first_use_and_a_record_base_gives_its_fields_first():
    make = records.dataclass(frozen=True, slots=True)
    base = make(type("Base", (), {"__annotations__": {"a": "int"}}))
    assert not callable(base.__dict__["__init__"])  # not compiled yet
    child = make(type("Child", (base,), {"__annotations__": {"b": "str"}, "b": "x"}))
    assert repr(child(1)) == "Child(a=1, b='x')"
    assert child.__match_args__ == ("a", "b")
    assert child.__slots__ == ("b",)  # a is the base's slot
    assert str(inspect.signature(base)) == "(a: 'int') -> None"
    assert callable(base.__dict__["__init__"])  # compiled by that first use, and kept


def test_a_record_matches_by_position():
    match messages.Exit(3, signal=9):
        case messages.Exit(code, signal):
            assert (code, signal) == (3, 9)
        case _:
            pytest.fail("Exit did not match")


def test_what_records_refuse():
    with pytest.raises(TypeError, match="frozen records with slots only"):
        records.dataclass(frozen=True, slots=False)
    with pytest.raises(TypeError, match="follows a default"):
        records.dataclass(frozen=True, slots=True)(
            type("D", (), {"a": 1, "__annotations__": {"a": "int", "b": "int"}})
        )
    with pytest.raises(TypeError, match="__post_init__"):
        records.dataclass(frozen=True, slots=True)(type("P", (), {"__post_init__": lambda self: None}))


@pytest.mark.parametrize(
    "cls", [*messages._BY_TYPE.values(), messages.PtyRequest], ids=lambda cls: cls.__name__
)
def test_every_message_is_made_as_its_dataclass_would_be(cls):
    """Each message's fields and defaults, made again by dataclasses: the same class."""
    annotations = {name: value for name, value in cls.__init__.__annotations__.items() if name != "return"}
    body = {
        name: Factory(default.make) if isinstance(default, records._Factory) else default
        for name, default in cls.__record__.items()
    }
    real, record = both(body, annotations)
    assert str(inspect.signature(record)) == str(inspect.signature(real)) == str(inspect.signature(cls))
    assert cls.__match_args__ == real.__match_args__ == cls.__slots__
    required = [name for name in cls.__match_args__ if name not in cls.__record__]
    values = {"data": b"x", "reason": "r", "rows": 1, "cols": 2, "size": 3, "offset": 4, "op": "ls"}
    args = [values.get(name, "v") for name in required]
    assert repr(cls(*args)) == repr(real(*args)).replace("Sample(", f"{cls.__name__}(", 1)


def test_importing_messages_leaves_dataclasses_alone():
    """The point of rcmd.records: `rcmd -c true` never pays for dataclasses and inspect."""
    code = "import sys, rcmd.protocol; print(sorted({'dataclasses', 'inspect'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=uncovered()
    )
    assert out.stdout.strip() == "[]"
