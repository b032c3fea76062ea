"""Command-line options built from config dataclasses: one definition of every setting.

Each field of a config dataclass becomes an option ``--field-name`` whose help is the field's
docstring (the string literal under it, as nerfstudio and tyro read them) and whose parser
follows its type: ``int``, ``float``, ``str``, ``Path``, ``bool`` (``--x/--no-x``), ``Literal``
(choices) and ``X | None``. A field whose default is a dataclass is flattened: its fields become
options of the same command. Field ``metadata`` may add ``short`` (``"-o"``), ``positional``
(True), ``metavar``, ``default_text`` (how ``--help`` names the default) or ``cli=False`` (not an option).

Example:
    >>> import argparse, dataclasses
    >>> from typing import Literal
    >>> @dataclasses.dataclass
    ... class Run:
    ...     steps: int = 4
    ...     '''Sampling steps.'''
    ...     mode: Literal["fast", "slow"] = "fast"
    ...     '''How to run.'''
    >>> parser = argparse.ArgumentParser()
    >>> add_config_arguments(parser, Run)
    >>> config_from_args(Run, parser.parse_args(["--steps", "8", "--mode", "slow"]))
    Run(steps=8, mode='slow')
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass: the string literal written under each field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return tp, False


def _plain(text: str) -> str:
    """A docstring made fit for ``--help`` (reST markup dropped; ``%`` escaped for argparse)."""
    return text.replace("``", "").replace(":func:", "").replace(":class:", "").replace(":mod:", "").replace("%", "%%")


def _options(cls: type) -> list[tuple[dataclasses.Field, Any, str]]:
    """``(field, resolved type, docstring)`` of every option of ``cls``, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(_options(tp))
            continue
        out.append((f, tp, docs.get(f.name, "")))
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else ("on" if value else "off")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, defaults: dict[str, Any] | None = None,
                         help: dict[str, str] | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` to ``parser``.

    Args:
        parser: the (sub)command's parser.
        cls: the config dataclass.
        defaults: defaults that differ from the dataclass's for this command.
        help: help texts that replace a field's docstring for this command.
    """
    defaults, help = defaults or {}, help or {}
    for f, tp, doc in _options(cls):
        default = defaults.get(f.name, _default(f))
        text = _plain(help.get(f.name, doc))
        base, optional = _unwrap_optional(tp)
        kwargs: dict[str, Any] = {"dest": f.name}
        if typing.get_origin(base) is Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base in (int, float, str, Path):
            kwargs["type"] = base
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for type {tp!r}")
        if "metavar" in f.metadata:
            kwargs["metavar"] = f.metadata["metavar"]
        if f.metadata.get("positional"):
            kwargs.pop("dest")
            parser.add_argument(f.name, help=text, **kwargs)
            continue
        required = default is dataclasses.MISSING
        if not required and (default is not None or "default_text" in f.metadata) and base is not bool:
            shown = f.metadata.get("default_text", _shown(default))
            text = f"{text.rstrip('.')}; default: {shown}" if text else f"default: {shown}"
        names = [f"--{f.name.replace('_', '-')}"] + ([f.metadata["short"]] if "short" in f.metadata else [])
        parser.add_argument(*names, default=None if required else default, required=required, help=text, **kwargs)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The dataclass ``cls`` built from parsed options (nested dataclasses rebuilt from their fields)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            values[f.name] = config_from_args(tp, args)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return cls(**values)
