"""Tools of an assistant project (``tools.yml`` + Python functions in the project's ``tools/`` folder).

A tool has a name, a description, a JSON schema of its arguments and a ``python: "module:function"``
reference. The dialog engine runs ``action`` steps through :class:`ToolRegistry`, and the generator can offer
the same tools to a language model (:meth:`ToolRegistry.json_schemas`). A tool call never raises: bad
arguments, an import error, an exception, a timeout or a result that is not JSON all come back as a
:class:`ToolResult` with ``ok=False`` and an ``error`` text written to be shown to a model or logged.

``tools.yml``::

    version: "1"
    tools:
      order_status:
        description: Look up the status of an order.
        parameters:
          type: object
          properties: {order_id: {type: string}}
          required: [order_id]
        timeout_s: 2
        python: orders:order_status      # tools/orders.py, def order_status(order_id): ...

A tool module is imported from ``tools/`` as a submodule of a package private to the project (nothing is
added to ``sys.path``); it may import its siblings relatively (``from . import data``).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from parley.core.logging import get_logger

log = get_logger(__name__)

#: Where a project's tool modules live.
TOOLS_DIR = "tools"
#: A tool name (also valid as an OpenAI function name).
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PYTHON_REF = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")


def _tool_name(value: str) -> str:
    if not TOOL_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a tool name: 1 to 64 letters, digits, '_' or '-'")
    return value


ToolName = Annotated[str, AfterValidator(_tool_name)]


class ToolSpec(BaseModel):
    """One tool of ``tools.yml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The tool's name: its key in ``tools.yml`` (filled in from it).
    name: ToolName
    #: What the tool does, for people and for a language model choosing it.
    description: str = ""
    #: JSON schema (draft 2020-12) of the keyword arguments: an object schema.
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    #: Seconds before the call is abandoned and reported as a timeout.
    timeout_s: float = Field(default=5.0, gt=0, le=600)
    #: ``module:function`` under the project's ``tools/`` folder (``orders:status`` -> tools/orders.py).
    python: str

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise ValueError(
                f"not a valid JSON schema{f' at {where}' if where else ''}: {exc.message}"
            ) from exc
        if value.get("type") != "object":
            raise ValueError("must be an object schema: {type: object, properties: {...}}")
        return value

    @field_validator("python")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not _PYTHON_REF.fullmatch(value):
            raise ValueError(f"{value!r} is not 'module:function' (for example orders:order_status)")
        return value

    @property
    def module(self) -> str:
        """The module part of :attr:`python`, relative to ``tools/``."""
        return self.python.partition(":")[0]

    @property
    def function(self) -> str:
        """The function part of :attr:`python`."""
        return self.python.partition(":")[2]


class ToolsFile(BaseModel):
    """``tools.yml`` (optional: a project without it has no tools)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["1"] = "1"
    tools: dict[ToolName, ToolSpec] = {}

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        """``name`` defaults to the key, so the YAML does not repeat it."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("version"), int):
            data["version"] = str(data["version"])
        if isinstance(data.get("tools"), dict):
            data["tools"] = {
                key: ({"name": key, **spec} if isinstance(spec, dict) else spec)
                for key, spec in data["tools"].items()
            }
        elif data.get("tools", {}) is None:
            data["tools"] = {}
        return data


def module_file(project_root: Path | str, spec: ToolSpec) -> Path | None:
    """The file that :attr:`ToolSpec.module` names under ``tools/`` (a module or a package), or ``None``."""
    base = Path(project_root) / TOOLS_DIR / Path(*spec.module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call: ``data`` (JSON types) when ``ok``, else ``error`` says why."""

    ok: bool
    data: Any = None
    error: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (for dialog state and events)."""
        return {"ok": self.ok, "data": self.data, "error": self.error, "duration_ms": self.duration_ms}


def _describe(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


class ToolRegistry:
    """The tools of one project, callable by name; functions are imported on first use."""

    def __init__(self, project_root: Path | str, tools: Mapping[str, ToolSpec] | ToolsFile) -> None:
        self._root = Path(project_root).resolve()
        self._tools: dict[str, ToolSpec] = dict(tools.tools if isinstance(tools, ToolsFile) else tools)
        self._validators = {
            name: Draft202012Validator(spec.parameters, format_checker=Draft202012Validator.FORMAT_CHECKER)
            for name, spec in self._tools.items()
        }
        self._functions: dict[str, Callable[..., Any]] = {}
        # One private package per project folder, so two projects' ``tools/orders.py`` never collide.
        digest = hashlib.sha256(str(self._root).encode()).hexdigest()[:12]
        self._package = f"_parley_project_tools_{digest}"

    @classmethod
    def for_project(cls, project: Any) -> ToolRegistry:
        """The registry of a loaded :class:`parley.core.project.Project`."""
        return cls(project.root, project.tools)

    @property
    def names(self) -> list[str]:
        """The tool names, sorted."""
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def spec(self, name: str) -> ToolSpec | None:
        """The spec of tool ``name``, ``None`` when there is none."""
        return self._tools.get(name)

    def json_schemas(self) -> list[dict[str, Any]]:
        """The tools as OpenAI-style function specs (``{"type": "function", "function": {...}}``)."""
        return [
            {
                "type": "function",
                "function": {"name": name, "description": spec.description, "parameters": spec.parameters},
            }
            for name, spec in sorted(self._tools.items())
        ]

    def _import(self, spec: ToolSpec) -> Callable[..., Any]:
        """Import ``spec``'s function (blocking: run it in a thread)."""
        if self._package not in sys.modules:
            package_spec = importlib.machinery.ModuleSpec(self._package, None, is_package=True)
            package_spec.submodule_search_locations = [str(self._root / TOOLS_DIR)]
            sys.modules[self._package] = importlib.util.module_from_spec(package_spec)
        if module_file(self._root, spec) is None:
            raise ImportError(f"no module {spec.module!r} in {self._root / TOOLS_DIR}")
        module = importlib.import_module(f"{self._package}.{spec.module}")
        function = getattr(module, spec.function, None)
        if not callable(function):
            raise ImportError(f"{spec.module!r} has no function {spec.function!r}")
        return function

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> ToolResult:
        """Run tool ``name`` with keyword ``args``; every failure is a ``ToolResult`` with an error."""
        started = time.perf_counter()

        def failed(error: str) -> ToolResult:
            log.warning("tool call failed", tool=name, error=error)
            return ToolResult(ok=False, error=error, duration_ms=(time.perf_counter() - started) * 1000)

        spec = self._tools.get(name)
        if spec is None:
            return failed(f"unknown tool {name!r} (known: {', '.join(self.names) or 'none'})")
        arguments = dict(args or {})
        problems = sorted(self._validators[name].iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if problems:
            return failed(f"invalid arguments for {name}: " + "; ".join(_describe(p) for p in problems))
        function = self._functions.get(name)
        if function is None:
            try:
                function = await asyncio.to_thread(self._import, spec)
            except Exception as exc:  # a broken tool module must not break the turn
                return failed(f"cannot load {spec.python} from {TOOLS_DIR}/: {type(exc).__name__}: {exc}")
            self._functions[name] = function
        try:
            if inspect.iscoroutinefunction(function):
                result = await asyncio.wait_for(function(**arguments), spec.timeout_s)
            else:
                # A sync function that overruns keeps its worker thread until it returns; we stop waiting.
                result = await asyncio.wait_for(asyncio.to_thread(function, **arguments), spec.timeout_s)
        except TimeoutError:
            return failed(f"{name} timed out after {spec.timeout_s:g} s")
        except Exception as exc:  # the tool's own error, reported as a value
            return failed(f"{name} failed: {type(exc).__name__}: {exc}")
        try:
            data = json.loads(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError) as exc:
            return failed(f"{name} returned a value that is not JSON: {exc}")
        return ToolResult(ok=True, data=data, duration_ms=(time.perf_counter() - started) * 1000)
