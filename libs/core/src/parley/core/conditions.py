"""Conditions of ``flows.yml`` (``slots.passengers > 4 and slots.diet == 'vegan'``) and action-argument
templates (``"{order_id}"``).

A condition is checked twice: when the project loads, :func:`compile_condition` parses it and accepts only a
small expression language (names ``slots``, ``entities``, ``intent``, ``results``, ``value``; literals;
``and``/``or``/``not``, comparisons, ``in``, arithmetic; dot or ``[...]`` access to dict keys; the functions
``len``, ``lower``, ``int``, ``float``, ``str``), so a typo fails validation with a clear message. At run time
:meth:`Condition.evaluate` runs it through ``simpleeval`` and never raises: a missing key reads as ``None``,
ordering comparisons with ``None`` are false, and any other error counts as false and is logged. User text
only ever arrives as *values* in the namespace; it is never parsed as an expression.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simpleeval import EvalWithCompoundTypes, FeatureNotAvailable, safe_add, safe_mult

from parley.core.logging import get_logger

log = get_logger(__name__)

#: The names a condition may read, and what each holds at run time.
NAMES: dict[str, str] = {
    "slots": "slot name -> value",
    "entities": "entity type -> value of the current message",
    "intent": "the current intent's name",
    "results": "save_as name -> result of an action step",
    "value": "the candidate value a collect step is validating",
}


def _length(value: Any) -> int:
    return 0 if value is None else len(value)


def _lower(value: Any) -> str | None:
    return None if value is None else str(value).lower()


#: The functions a condition may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "lower": _lower,
    "int": int,
    "float": float,
    "str": str,
}

_MAX_LENGTH = 1000

_BOOL_OPS = {ast.And: "and", ast.Or: "or"}
_UNARY_OPS = {ast.Not: "not", ast.USub: "-", ast.UAdd: "+"}
_BIN_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_READABLE = {
    "Lambda": "lambda",
    "ListComp": "a comprehension",
    "SetComp": "a comprehension",
    "DictComp": "a comprehension",
    "GeneratorExp": "a generator",
    "JoinedStr": "an f-string",
    "NamedExpr": "':='",
    "Dict": "a dict literal",
    "Pow": "'**'",
    "Await": "await",
    "Yield": "yield",
    "Starred": "'*'",
}
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot)


class ConditionError(ValueError):
    """A condition string is not a valid condition (raised when a project loads, never at run time)."""


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """``<``, ``>``... that are false (not an error) when a side is ``None``: an empty slot is not > 4."""

    def check(a: Any, b: Any) -> bool:
        return False if a is None or b is None else compare(a, b)

    return check


_OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: safe_add,  # simpleeval's: refuse to build huge strings and lists
    ast.Sub: operator.sub,
    ast.Mult: safe_mult,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: _ordered(operator.lt),
    ast.LtE: _ordered(operator.le),
    ast.Gt: _ordered(operator.gt),
    ast.GtE: _ordered(operator.ge),
    ast.In: lambda a, b: False if b is None else a in b,
    ast.NotIn: lambda a, b: True if b is None else a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _read(container: Any, key: Any) -> Any:
    """``container[key]`` for a dict (or a list index), ``None`` when absent or not a container."""
    if isinstance(container, Mapping):
        try:
            return container.get(key)
        except TypeError:  # an unhashable key
            return None
    if isinstance(container, Sequence) and not isinstance(container, str | bytes) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else None
    return None


class _Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval where ``a.b`` and ``a[b]`` read dict keys only (never Python attributes)."""

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):  # also refused at compile time; kept as a second line of defence
            raise FeatureNotAvailable(f"attribute {node.attr!r} is not available")
        return _read(self._eval(node.value), node.attr)

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        return _read(self._eval(node.value), self._eval(node.slice))


class _Checker(ast.NodeVisitor):
    """Refuses every construct outside the condition language, naming it and its column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.slots: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> None:
        column = getattr(node, "col_offset", 0) + 1
        if isinstance(node, ast.Attribute) and node.end_col_offset is not None:
            column = node.end_col_offset - len(node.attr) + 1
        raise ConditionError(f"{message} (column {column} of {self.text!r})")

    def generic_visit(self, node: ast.AST) -> None:
        allowed = (
            ast.Expression,
            ast.BoolOp,
            ast.UnaryOp,
            ast.BinOp,
            ast.Compare,
            ast.IfExp,
            ast.List,
            ast.Tuple,
            ast.Set,
            ast.Load,
            *_BOOL_OPS,
            *_UNARY_OPS,
            *_BIN_OPS,
            *_COMPARE_OPS,
        )
        if not isinstance(node, allowed):
            what = type(node).__name__
            self.fail(node, f"{_READABLE.get(what, what)} is not allowed in a condition")
        super().generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, str | int | float | bool | type(None)):
            self.fail(node, f"the literal {node.value!r} is not allowed in a condition")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id not in NAMES:
            hint = " (call it with parentheses)" if node.id in FUNCTIONS else ""
            self.fail(node, f"unknown name {node.id!r}{hint}; a condition can read {', '.join(NAMES)}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"{node.attr!r}: names starting with '_' are not allowed in a condition")
        if isinstance(node.value, ast.Name) and node.value.id == "slots":
            self.slots.add(node.attr)
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.slice, ast.Slice):
            self.fail(node, "slices are not allowed in a condition")
        if (
            isinstance(node.value, ast.Name)
            and node.value.id == "slots"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            self.slots.add(node.slice.value)
        self.visit(node.value)
        self.visit(node.slice)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            self.fail(node, f"only the functions {', '.join(FUNCTIONS)} can be called in a condition")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or len(node.args) != 1:
            self.fail(node, f"{node.func.id}() takes exactly one argument")  # type: ignore[attr-defined]
        for arg in node.args:
            self.visit(arg)


@dataclass(frozen=True)
class Condition:
    """A compiled condition; ``slots`` names the slots it reads (``slots.x`` or ``slots['x']``)."""

    text: str
    tree: ast.expr = field(repr=False, compare=False)
    slots: frozenset[str] = frozenset()

    def evaluate(self, namespace: Mapping[str, Any]) -> bool:
        """The condition's truth in ``namespace`` (keys from :data:`NAMES`; missing ones read as empty).

        Never raises: an error (``int('abc')``, a string compared with a number...) is logged and counts as
        false, because a broken condition must not break the conversation.
        """
        names = {
            "slots": namespace.get("slots") or {},
            "entities": namespace.get("entities") or {},
            "intent": namespace.get("intent"),
            "results": namespace.get("results") or {},
            "value": namespace.get("value"),
        }
        evaluator = _Evaluator(operators=dict(_OPERATORS), functions=dict(FUNCTIONS), names=names)
        try:
            return bool(evaluator.eval(self.text, previously_parsed=self.tree))
        except Exception as exc:  # any failure of a user's expression is "false", by contract
            log.warning("condition failed; counted as false", condition=self.text, error=repr(exc))
            return False

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=2048)
def compile_condition(text: str) -> Condition:
    """Parse and check ``text``; raises :class:`ConditionError` with a readable message when it is not a
    condition (bad syntax, an unknown name, a call to something other than the allowed functions...)."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition cannot be empty")
    if len(text) > _MAX_LENGTH:
        raise ConditionError(f"a condition is at most {_MAX_LENGTH} characters long")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        column = f" at column {exc.offset}" if exc.offset else ""
        raise ConditionError(f"invalid syntax{column} in {text!r}: {exc.msg}") from exc
    checker = _Checker(text.strip())
    checker.visit(tree)
    return Condition(text=text.strip(), tree=tree.body, slots=frozenset(checker.slots))


# --- templates of action arguments --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_names(template: Any) -> set[str]:
    """The ``{name}`` placeholders in ``template`` (a string, or lists/dicts of them)."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(template_names(v) for v in template.values()))
    if isinstance(template, list | tuple):
        return set().union(*(template_names(v) for v in template))
    return set()


def render_template(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with ``{name}`` replaced from ``values`` (the slots); nothing else is interpreted.

    A string that is exactly ``"{name}"`` becomes the value itself (a number stays a number; ``None`` when
    missing); a placeholder inside other text becomes ``str(value)`` (empty when missing). Dicts and lists are
    rendered item by item; other values pass through unchanged.
    """
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return values.get(whole.group(1))

        def one(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return "" if value is None else str(value)

        return _PLACEHOLDER.sub(one, template)
    if isinstance(template, Mapping):
        return {key: render_template(value, values) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [render_template(value, values) for value in template]
    return template
