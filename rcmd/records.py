"""Frozen records with slots: what ``@dataclass(frozen=True, slots=True)`` makes, made cheaply.

rcmd's messages are small frozen dataclasses with ``__slots__`` (as h11's events are). On
Python 3.11, ``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``) and
compiles six methods per class: for the 30 message classes, most of the start-up of a
one-shot ``rcmd -c true``. This module makes the same classes from the same class bodies,
with one small ``__init__`` each, compiled on its first use, and the rest shared. rcmd.messages
uses it at run time and shows type checkers the real ``dataclass`` (``if TYPE_CHECKING``), so
both read::

    @dataclass(frozen=True, slots=True)
    class Exit(Message):
        TYPE: ClassVar[MessageType] = MessageType.EXIT
        returncode: int
        signal: int | None = None
        env: Mapping[str, str] = field(default_factory=dict)

What a record has, as the dataclass would: ``__init__`` taking the fields in order, by
position or name, with their defaults (``field(default_factory=...)``: a fresh value each
time); ``__slots__`` and ``__match_args__`` (the field names); ``__repr__``; ``__eq__`` (same
class, equal fields) and ``__hash__`` (of the fields); assignment and deletion raise
:class:`FrozenInstanceError` (an AttributeError). Fields are the class's own annotations and
its record bases', less ``ClassVar`` ones. Not supported (TypeError): other options than
``frozen=True, slots=True``, and ``__post_init__``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FrozenInstanceError", "dataclass", "field"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class FrozenInstanceError(AttributeError):
    """An attempt to assign or delete a field of a frozen record."""


class _Factory:
    """``field(default_factory=...)``: a default made anew for each instance."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class _FactoryDefault:
    """The default an ``__init__`` shows for a field with a factory, as dataclasses shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _FactoryDefault()


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is ``default_factory()``, called for each new record."""
    return _Factory(default_factory)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.startswith(("ClassVar", "typing.ClassVar"))


def _repr(self: Any) -> str:
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
    return f"{type(self).__qualname__}({fields})"


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self.__match_args__)


def _eq(self: Any, other: object) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _reduce(self: Any) -> tuple[type, tuple[Any, ...]]:
    return type(self), _values(self)


def _init_for(
    qualname: str, names: list[str], defaults: dict[str, Any], annotations: dict[str, Any]
) -> Callable[..., None]:
    """``__init__(self, a, b=<default>, c=<factory>)`` setting each field through object's
    own setter (the class's raises): compiled once, as fast as the dataclass's."""
    scope: dict[str, Any] = {"_set": object.__setattr__, "_FACTORY": _FACTORY}
    parameters, body = ["self"], []
    for name in names:
        if name not in defaults:
            parameters.append(name)
        elif isinstance(defaults[name], _Factory):
            scope[f"_make_{name}"] = defaults[name].make
            parameters.append(f"{name}=_FACTORY")
            body.append(f"    if {name} is _FACTORY: {name} = _make_{name}()")
        else:
            scope[f"_default_{name}"] = defaults[name]
            parameters.append(f"{name}=_default_{name}")
    body += [f"    _set(self, {name!r}, {name})" for name in names] or ["    pass"]
    source = f"def __init__({', '.join(parameters)}):\n" + "\n".join(body)
    exec(source, scope)  # built from field names, which are identifiers
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    init.__annotations__ = {**{name: annotations[name] for name in names}, "return": None}
    return init


class _InitOnFirstUse:
    """A record's ``__init__`` until its first use (making an instance, or reading it from the
    class, as inspect.signature does): then it is compiled and put in its place. Compiling is
    most of a record's making, and a one-shot ``rcmd -c`` makes instances of 5 of the 30
    message classes."""

    __slots__ = ("annotations", "defaults", "names", "owner")

    def __init__(self, names: list[str], defaults: dict[str, Any], annotations: dict[str, Any]) -> None:
        self.names, self.defaults, self.annotations = names, defaults, annotations
        self.owner: type | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        assert self.owner is not None
        init = _init_for(self.owner.__qualname__, self.names, self.defaults, self.annotations)
        type.__setattr__(self.owner, "__init__", init)
        return init if instance is None else init.__get__(instance, owner)


def _annotations_of(record: type) -> dict[str, Any]:
    init = record.__dict__["__init__"]
    return dict(init.annotations if isinstance(init, _InitOnFirstUse) else init.__annotations__)


def _parameters(names: list[str], defaults: dict[str, Any], annotations: dict[str, Any]) -> str:
    """The parameters as ``str(inspect.signature(...))`` writes them."""
    parameters = []
    for name in names:
        text = f"{name}: {annotations[name]!r}"
        if name in defaults:
            default = defaults[name]
            text += f" = {_FACTORY!r}" if isinstance(default, _Factory) else f" = {default!r}"
        parameters.append(text)
    return ", ".join(parameters)


def dataclass(*, frozen: bool, slots: bool) -> Callable[[type[T]], type[T]]:
    """The class decorator: ``@dataclass(frozen=True, slots=True)`` (the only form)."""
    if not (frozen and slots):
        raise TypeError("rcmd.records makes frozen records with slots only")

    def make(cls: type[T]) -> type[T]:
        namespace = dict(cls.__dict__)
        if "__post_init__" in namespace:
            raise TypeError(f"{cls.__qualname__}: __post_init__ is not supported")
        names: list[str] = []
        defaults: dict[str, Any] = {}
        annotations: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):  # fields of record bases first, as dataclasses
            if "__record__" in base.__dict__:
                names += [name for name in base.__dict__["__match_args__"] if name not in names]
                defaults.update(base.__dict__["__record__"])
                annotations.update(_annotations_of(base))
        for name, annotation in namespace.get("__annotations__", {}).items():
            if _is_classvar(annotation):
                continue
            if name in namespace:
                defaults[name] = namespace.pop(name)
            if name not in names:
                names.append(name)
            annotations[name] = annotation
        for at, name in enumerate(names):
            if name not in defaults and any(earlier in defaults for earlier in names[:at]):
                raise TypeError(f"{cls.__qualname__}: non-default field {name!r} follows a default")
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
        inherited_slots = {slot for base in cls.__mro__[1:] for slot in base.__dict__.get("__slots__", ())}
        namespace["__slots__"] = tuple(name for name in names if name not in inherited_slots)
        namespace["__match_args__"] = tuple(names)
        namespace["__record__"] = defaults
        namespace["__init__"] = _InitOnFirstUse(names, defaults, annotations)
        namespace["__qualname__"] = cls.__qualname__
        if namespace.get("__doc__") is None:  # as dataclasses: the signature, e.g. "Stdout(data: 'bytes')"
            namespace["__doc__"] = f"{cls.__name__}({_parameters(names, defaults, annotations)})"
        for method_name, method in (
            ("__repr__", _repr),
            ("__eq__", _eq),
            ("__hash__", _hash),
            ("__setattr__", _frozen_setattr),
            ("__delattr__", _frozen_delattr),
            ("__reduce__", _reduce),
        ):
            namespace.setdefault(method_name, method)
        metaclass: Any = type(cls)  # type, or Message's if it had one
        record: type[T] = metaclass(cls.__name__, cls.__bases__, namespace)
        return record

    return make
