"""Write docs/API.md, the reference of rcmd's public API, from the docstrings of ``rcmd.__all__``.

    python docs/make_api.py            # rewrite docs/API.md
    python docs/make_api.py --check    # exit 1 if docs/API.md is not what this would write

tests/test_readme.py checks that the committed file equals a fresh generation, so a changed
docstring or signature goes with a regenerated reference. Only what rcmd defines is listed:
a class's public methods and properties, its own and those it inherits from rcmd's classes,
not what it inherits from Python.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import rcmd

OUTPUT = Path(__file__).with_name("API.md")

HEADER = """\
# rcmd: the public API

Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.
Everything here is importable from `rcmd` (`import rcmd`, then `rcmd.connect(...)`).
"""


class _Annotation(str):
    """An annotation kept as text (``from __future__ import annotations``), shown unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _signature(obj: object, *, drop_self: bool = False) -> str:
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin without one
        return ""
    parameters = list(signature.parameters.values())[1 if drop_self else 0 :]
    unquoted = [
        p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p
        for p in parameters
    ]
    returns = signature.return_annotation
    if isinstance(returns, str):
        returns = _Annotation(returns)
    return str(signature.replace(parameters=unquoted, return_annotation=returns))


def _doc(obj: object) -> str:
    doc = obj.__doc__ if isinstance(obj, type) else inspect.getdoc(obj)
    return inspect.cleandoc(doc) if doc else ""


def _class_section(name: str, cls: type) -> list[str]:
    bases = [base.__name__ for base in cls.__bases__ if base is not object]
    title = f"class {name}({', '.join(bases)})" if bases else f"class {name}"
    lines = [f"### `{title}`", ""]
    init_owner = next((klass for klass in cls.__mro__ if "__init__" in vars(klass)), object)
    if init_owner.__module__.startswith("rcmd"):
        lines += ["```python", f"{name}{_signature(cls)}", "```", ""]
    lines += [_doc(cls), ""]
    members: dict[str, object] = {}  # its own, then what it inherits from rcmd's classes
    for klass in cls.__mro__:
        if klass.__module__.startswith("rcmd"):
            for member_name, member in vars(klass).items():
                members.setdefault(member_name, member)
    for member_name, member in members.items():
        if member_name.startswith("_"):
            continue
        if isinstance(member, property):
            lines += [f"#### `{name}.{member_name}` (property)", ""]
        elif inspect.isfunction(member):
            prefix = "async " if inspect.iscoroutinefunction(member) else ""
            lines += [f"#### `{prefix}{name}.{member_name}{_signature(member, drop_self=True)}`", ""]
        else:
            continue
        if member.__doc__:
            lines += [_doc(member), ""]
    return lines


def generate() -> str:
    parts = [HEADER]
    for name in sorted(rcmd.__all__, key=str.lower):
        if name == "__version__":
            continue
        obj = getattr(rcmd, name)
        if inspect.isclass(obj):
            parts += _class_section(name, obj)
        elif inspect.isfunction(obj):
            parts += [
                f"### `{name}()`",
                "",
                "```python",
                f"{name}{_signature(obj)}",
                "```",
                "",
                _doc(obj),
                "",
            ]
        elif inspect.ismodule(obj):
            parts += [f"### module `rcmd.{name}`", "", _doc(obj), ""]
        else:
            parts += [f"### `{name}`", "", f"A constant: `{obj!r}`. {_doc(type(obj))}", ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
