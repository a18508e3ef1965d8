"""Project tools: tools.yml specs and the registry that calls them, errors always as values."""

import asyncio
import sys
import time

import pytest
from pydantic import ValidationError

from parley.core.tools import ToolRegistry, ToolsFile, ToolSpec, module_file

MODULE = """\
import asyncio
import json
import time
from pathlib import Path

from . import data  # a sibling module, imported relatively

CALLS = []


def lookup(order_id):
    CALLS.append(order_id)
    orders = json.loads((Path(__file__).parent / "orders.json").read_text())
    if order_id not in orders:
        raise KeyError(f"no order {order_id}")
    return orders[order_id]


async def forecast(city, days=1):
    await asyncio.sleep(0)
    return {"city": city, "days": days, "sky": data.SKY}


def slow():
    time.sleep(0.5)
    return "late"


async def slow_async():
    await asyncio.sleep(5)


def not_json():
    return {"when": object()}


def tuple_result():
    return (1, 2)


NOT_A_FUNCTION = 3
"""


def _spec(name: str, python: str, **extra) -> ToolSpec:
    return ToolSpec(name=name, python=python, **extra)


OBJECT = {"type": "object", "properties": {}}


@pytest.fixture
def registry(tmp_path) -> ToolRegistry:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "shop.py").write_text(MODULE)
    (tools / "data.py").write_text("SKY = 'clear'\n")
    (tools / "orders.json").write_text('{"12345": {"status": "shipped"}}')
    (tools / "pkg").mkdir()
    (tools / "pkg" / "__init__.py").write_text("")
    (tools / "pkg" / "deep.py").write_text("def ping():\n    return 'pong'\n")
    specs = [
        _spec(
            "order_lookup",
            "shop:lookup",
            description="Look up an order by its number.",
            parameters={
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        ),
        _spec(
            "forecast",
            "shop:forecast",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
                "required": ["city"],
            },
        ),
        _spec("slow", "shop:slow", timeout_s=0.1),
        _spec("slow_async", "shop:slow_async", timeout_s=0.1),
        _spec("not_json", "shop:not_json"),
        _spec("tuple_result", "shop:tuple_result"),
        _spec("missing_module", "nowhere:f"),
        _spec("missing_function", "shop:nothing"),
        _spec("not_callable", "shop:NOT_A_FUNCTION"),
        _spec("deep", "pkg.deep:ping"),
    ]
    return ToolRegistry(tmp_path, {s.name: s for s in specs})


async def test_a_sync_tool_runs_with_validated_arguments(registry):
    result = await registry.call("order_lookup", {"order_id": "12345"})
    assert result.ok and result.error is None
    assert result.data == {"status": "shipped"}
    assert result.duration_ms >= 0


async def test_an_async_tool_and_a_relative_import_work(registry):
    result = await registry.call("forecast", {"city": "Oslo", "days": 2})
    assert result.ok, result.error
    assert result.data == {"city": "Oslo", "days": 2, "sky": "clear"}


async def test_a_tool_in_a_package_under_tools(registry):
    assert (await registry.call("deep")).data == "pong"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "invalid arguments for order_lookup: 'order_id' is a required property"),
        ({"order_id": 12345}, "invalid arguments for order_lookup: order_id: 12345 is not of type 'string'"),
        ({"order_id": "12"}, "order_id: '12' does not match '^[0-9]{5}$'"),
        ({"order_id": "12345", "x": 1}, "Additional properties are not allowed ('x' was unexpected)"),
    ],
)
async def test_bad_arguments_come_back_as_an_error_text_for_the_caller(registry, args, error):
    result = await registry.call("order_lookup", args)
    assert not result.ok and result.data is None
    assert error in result.error


async def test_invalid_arguments_never_reach_the_function(registry):
    await registry.call("order_lookup", {"order_id": "12345"})
    module = sys.modules[f"{registry._package}.shop"]
    before = list(module.CALLS)
    await registry.call("order_lookup", {"order_id": 1})
    assert before == module.CALLS


async def test_an_exception_in_the_tool_is_an_error_value(registry):
    result = await registry.call("order_lookup", {"order_id": "99999"})
    assert not result.ok
    assert result.error == "order_lookup failed: KeyError: 'no order 99999'"


async def test_a_sync_tool_that_overruns_its_timeout_is_abandoned(registry):
    started = time.perf_counter()
    result = await registry.call("slow")
    assert time.perf_counter() - started < 0.4
    assert not result.ok and result.error == "slow timed out after 0.1 s"


async def test_an_async_tool_that_overruns_its_timeout_is_cancelled(registry):
    result = await registry.call("slow_async")
    assert not result.ok and result.error == "slow_async timed out after 0.1 s"


async def test_a_result_must_be_json(registry):
    result = await registry.call("not_json")
    assert not result.ok and "returned a value that is not JSON" in result.error
    assert (await registry.call("tuple_result")).data == [1, 2]  # normalised to JSON types


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("missing_module", "cannot load nowhere:f from tools/: ImportError: no module 'nowhere'"),
        (
            "missing_function",
            "cannot load shop:nothing from tools/: ImportError: 'shop' has no function 'nothing'",
        ),
        ("not_callable", "has no function 'NOT_A_FUNCTION'"),
        ("no_such_tool", "unknown tool 'no_such_tool' (known: deep, forecast"),
    ],
)
async def test_tools_that_cannot_be_loaded_are_error_values(registry, name, error):
    result = await registry.call(name)
    assert not result.ok and error in result.error


async def test_modules_load_once_without_touching_sys_path(registry):
    path_before = list(sys.path)
    await registry.call("order_lookup", {"order_id": "12345"})
    await registry.call("order_lookup", {"order_id": "12345"})
    assert sys.path == path_before
    module = sys.modules[f"{registry._package}.shop"]
    assert module.CALLS[-2:] == ["12345", "12345"]
    assert "shop" not in sys.modules


async def test_two_projects_with_the_same_module_name_do_not_collide(tmp_path):
    registries = []
    for name in ("a", "b"):
        (tmp_path / name / "tools").mkdir(parents=True)
        (tmp_path / name / "tools" / "same.py").write_text(f"def who():\n    return {name!r}\n")
        registries.append(ToolRegistry(tmp_path / name, {"who": _spec("who", "same:who")}))
    results = await asyncio.gather(*(r.call("who") for r in registries))
    assert [r.data for r in results] == ["a", "b"]


def test_json_schemas_are_openai_function_specs(registry):
    schemas = registry.json_schemas()
    lookup = next(s for s in schemas if s["function"]["name"] == "order_lookup")
    assert lookup == {
        "type": "function",
        "function": {
            "name": "order_lookup",
            "description": "Look up an order by its number.",
            "parameters": registry.spec("order_lookup").parameters,
        },
    }
    assert [s["function"]["name"] for s in schemas] == registry.names


def test_tools_file_takes_names_from_keys_and_checks_schemas(tmp_path):
    tools = ToolsFile.model_validate(
        {"version": 1, "tools": {"ping": {"python": "net:ping", "parameters": OBJECT, "timeout_s": 2}}}
    )
    spec = tools.tools["ping"]
    assert (spec.name, spec.module, spec.function, spec.timeout_s) == ("ping", "net", "ping", 2)
    assert module_file(tmp_path, spec) is None
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "net.py").write_text("")
    assert module_file(tmp_path, spec) == tmp_path / "tools" / "net.py"
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        ToolSpec(name="x", python="m:f", parameters={"type": "object", "properties": {"a": {"type": 3}}})
    with pytest.raises(ValidationError, match="must be an object schema"):
        ToolSpec(name="x", python="m:f", parameters={"type": "array"})
    with pytest.raises(ValidationError, match="is not 'module:function'"):
        ToolSpec(name="x", python="m.f")
    with pytest.raises(ValidationError, match="is not a tool name"):
        ToolsFile.model_validate({"tools": {"bad name": {"python": "m:f"}}})
    with pytest.raises(ValidationError, match="greater than 0"):
        ToolSpec(name="x", python="m:f", timeout_s=0)
    assert ToolsFile.model_validate({"tools": None}).tools == {}
