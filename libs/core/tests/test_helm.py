"""The Helm charts lint, render and validate offline, and the GPU overlay puts only nlu/generator on GPUs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.core.infra import find_repo_root
from parley.core.infra.helm import HelmError, helm_binary, helm_lint, render_manifests

REPO = find_repo_root(Path(__file__)) or Path(__file__).resolve().parents[3]
CHARTS = REPO / "infra" / "helm"
UMBRELLA = CHARTS / "parley"
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary(REPO)


def _deployments(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rendered Deployments by their app.kubernetes.io/component label."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in manifests
        if m["kind"] == "Deployment"
    }


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _gpus(deployment: dict[str, Any]) -> dict[str, Any]:
    resources = _container(deployment).get("resources", {})
    return {
        kind: amounts[GPU] for kind in ("requests", "limits") if GPU in (amounts := resources.get(kind) or {})
    }


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in _container(deployment)["env"]}


def test_charts_lint_render_and_validate(helm):
    helm_lint(CHARTS, helm=helm)


def test_gpu_values_give_nlu_a_gpu_and_not_the_gateway(helm):
    deployments = _deployments(render_manifests(UMBRELLA, UMBRELLA / "ci" / "gpu-values.yaml", helm=helm))

    nlu = deployments["nlu"]
    assert int(_gpus(nlu)["limits"]) >= 1
    assert _env(nlu)["PARLEY_NLU_DEVICE"] == "cuda"
    assert any(t.get("key") == GPU for t in nlu["spec"]["template"]["spec"]["tolerations"])
    assert int(_gpus(deployments["generator"])["limits"]) >= 1

    assert _gpus(deployments["gateway"]) == {}
    for name in ("gateway", "context", "dialog"):
        assert _gpus(deployments[name]) == {}, name
        assert "nodeSelector" not in deployments[name]["spec"]["template"]["spec"], name


def test_default_values_request_no_gpu_and_wire_the_services(helm):
    manifests = render_manifests(UMBRELLA, UMBRELLA / "ci" / "default-values.yaml", helm=helm)
    deployments = _deployments(manifests)

    assert sorted(deployments) == ["context", "dialog", "gateway", "generator", "nlu"]
    ports = {"nlu": 50051, "dialog": 50052, "generator": 50053, "context": 50054, "gateway": 50055}
    for name, deployment in deployments.items():
        container = _container(deployment)
        env = _env(deployment)
        assert _gpus(deployment) == {}, name
        assert env[f"PARLEY_{name.upper()}_GRPC_PORT"] == str(ports[name])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        if name != "gateway":
            assert container["readinessProbe"]["grpc"] == {"port": ports[name]}
    assert _env(deployments["nlu"])["PARLEY_NLU_DEVICE"] == "cpu"
    assert _env(deployments["dialog"])["PARLEY_CONTEXT_ADDRESS"] == "parley-context:50054"
    assert _env(deployments["gateway"])["PARLEY_CONTEXT_ADDRESS"] == "parley-context:50054"
    assert _container(deployments["gateway"])["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The database URL only ever comes from a Secret, and only the context service (its data) and the
    # gateway (its API keys) get it.
    for name in ("context", "gateway"):
        assert _env(deployments[name])["PARLEY_DATABASE_URL"] == {
            "secretKeyRef": {"name": "parley-db", "key": "database-url"}
        }
    others = [d for n, d in deployments.items() if n not in ("context", "gateway")]
    assert all("PARLEY_DATABASE_URL" not in _env(d) for d in others)
    gateway = _env(deployments["gateway"])
    assert gateway["PARLEY_GATEWAY_AUTH"] == "api_key"  # a deployed gateway asks for keys by default
    limits = (gateway["PARLEY_GATEWAY_RATE_LIMIT_PER_S"], gateway["PARLEY_GATEWAY_RATE_LIMIT_BURST"])
    assert limits == ("20", "40")
    (config,) = [m for m in manifests if m["kind"] == "ConfigMap"]
    assert config["data"]["PARLEY_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert config["data"]["PARLEY_KAFKA_TOPIC_PREFIX"] == "parley."


def _is_subset(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and _is_subset(v, whole[k]) for k, v in part.items()
        )
    return part == whole


def test_ci_gpu_values_carry_values_gpu_yaml():
    overlay = yaml.safe_load((UMBRELLA / "values-gpu.yaml").read_text())
    ci = yaml.safe_load((UMBRELLA / "ci" / "gpu-values.yaml").read_text())
    assert _is_subset(overlay, ci), "ci/gpu-values.yaml must contain everything values-gpu.yaml sets"


def test_an_invalid_manifest_fails_with_the_object_and_field(helm, tmp_path):
    charts = tmp_path / "helm"
    shutil.copytree(CHARTS, charts, ignore=shutil.ignore_patterns("*.tgz"))
    (charts / "parley" / "ci" / "typo-values.yaml").write_text(
        "context: {database: {existingSecret: db}}\nnlu: {containerSecurityContext: {runAsNonRot: true}}\n"
    )
    with pytest.raises(HelmError, match=r"Deployment/parley-nlu: .*securityContext.*runAsNonRot"):
        helm_lint(charts, helm=helm)


def test_missing_database_secret_is_a_clear_error(helm):
    with pytest.raises(HelmError, match=r"context\.database\.existingSecret is required"):
        render_manifests(UMBRELLA, None, helm=helm)


def test_gateway_auth_values_render_and_a_wrong_mode_is_a_clear_error(helm, tmp_path):
    base = yaml.safe_load((UMBRELLA / "ci" / "default-values.yaml").read_text())
    base.setdefault("gateway", {})
    base["gateway"]["auth"] = {"mode": "none"}
    base["gateway"]["corsOrigins"] = ["https://shop.example.com", "https://admin.example.com"]
    values = tmp_path / "open.yaml"
    values.write_text(yaml.safe_dump(base))
    gateway = _env(_deployments(render_manifests(UMBRELLA, values, helm=helm))["gateway"])
    assert gateway["PARLEY_GATEWAY_AUTH"] == "none" and "PARLEY_DATABASE_URL" not in gateway
    assert gateway["PARLEY_GATEWAY_CORS_ORIGINS"] == "https://shop.example.com,https://admin.example.com"
    base["gateway"]["auth"] = {"mode": "magic"}
    values.write_text(yaml.safe_dump(base))
    with pytest.raises(HelmError, match=r"gateway\.auth\.mode must be api_key or none"):
        render_manifests(UMBRELLA, values, helm=helm)
