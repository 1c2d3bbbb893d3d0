"""Offline validation of everything in ``deploy/``: Kubernetes manifests, compose file, Dockerfile.

- Kubernetes: the base and each overlay are rendered by :mod:`tests.unit.deploy.kustomize_render`
  and every object is validated, in strict mode (unknown fields are errors), against the
  Kubernetes JSON schemas that the ``kubernetes-validate`` package ships (no network). When
  ``kubectl`` is on the PATH its ``kustomize`` output is compared with ours as well.
- Compose: ``deploy/compose.yaml`` against the compose spec schema vendored next to this file,
  ``compose_spec.json``: ``compose/config/compose_spec.json`` from the ``docker-compose==1.29.2``
  wheel on PyPI (Apache-2.0; sha256
  0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac).
- The deployed policy loads from the rendered ConfigMap exactly as a pod would see it.

Needs ``kubernetes-validate`` (and ``jsonschema``, which it pulls in); without it these tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.policy.load import load_policy
from tests.unit.deploy.kustomize_render import Doc, load_yaml_docs, pod_spec, render

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")
OLDEST_K8S = "1.30.0"
"""The oldest Kubernetes release the manifests target (``lifecycle.preStop.sleep`` is GA there)."""
SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def _kv() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    """(kustomization name, rendered objects)."""
    name: str = request.param
    return name, render(K8S / name)


def _by_kind(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = _by_kind(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("release", ["oldest", "latest"])
def test_every_object_validates_against_the_kubernetes_schema(
    rendered: tuple[str, list[Doc]], release: str
) -> None:
    kv = _kv()
    version = OLDEST_K8S if release == "oldest" else kv.latest_version()
    name, docs = rendered
    assert docs, name
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:  # pragma: no cover - the message is the point
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc}")


def test_base_has_the_whole_shape(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in (
        ("Deployment", "hybrid-router"),
        ("Service", "hybrid-router"),
        ("HorizontalPodAutoscaler", "hybrid-router"),
        ("PodDisruptionBudget", "hybrid-router"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("Deployment", "vllm"),
        ("Service", "vllm"),
    ):
        assert expected in kinds
    assert not _by_kind(docs, "Secret"), "secrets are referenced, never committed"


def test_gateway_probes_resources_and_secret_references(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    pod = pod_spec(_one(docs, "Deployment", "hybrid-router"))
    assert pod is not None
    (gw,) = pod["containers"]
    assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(gw["resources"]["requests"])
    assert {"cpu", "memory"} <= set(gw["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in gw["env"]}
    assert env["REDIS_URL"]["value"].startswith("redis://")
    for var_name, var in env.items():
        if SECRETISH.search(var_name):
            assert "value" not in var, f"{var_name} must come from a Secret"
            assert var["valueFrom"]["secretKeyRef"]["name"] == "router-secrets"
    assert env["ROUTER_MASTER_KEY"]["valueFrom"]["secretKeyRef"].get("optional") is not True


def test_selectors_match_pod_labels(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for workload in _by_kind(docs, "Deployment") + _by_kind(docs, "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
        services = [
            s for s in _by_kind(docs, "Service") if s["spec"]["selector"].items() <= labels.items()
        ]
        assert len(services) == 1, f"one Service selects {workload['metadata']['name']}"
    gateway = _one(docs, "Deployment", "hybrid-router")
    gw_labels = gateway["spec"]["template"]["metadata"]["labels"]
    pdb = _one(docs, "PodDisruptionBudget", "hybrid-router")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= gw_labels.items()
    hpa = _one(docs, "HorizontalPodAutoscaler", "hybrid-router")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hybrid-router",
    }
    assert hpa["spec"]["minReplicas"] >= pdb["spec"]["minAvailable"]


def test_vllm_asks_for_a_gpu(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    pod = pod_spec(_one(docs, "Deployment", "vllm"))
    assert pod is not None
    (vllm,) = pod["containers"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--served-model-name" in vllm["args"]
    served = vllm["args"][vllm["args"].index("--served-model-name") + 1]
    assert served == "local-qwen"


def test_policy_config_map_loads_as_the_pod_sees_it(
    rendered: tuple[str, list[Doc]], tmp_path: Path
) -> None:
    name, docs = rendered
    gateway = _one(docs, "Deployment", "hybrid-router")
    pod = pod_spec(gateway)
    assert pod is not None
    (volume,) = [v for v in pod["volumes"] if v["name"] == "policies"]
    cm = _one(docs, "ConfigMap", volume["configMap"]["name"])
    assert cm["data"]["prices.yaml"] == (ROOT / "policies" / "prices.yaml").read_text()
    for key, text in cm["data"].items():
        (tmp_path / key).write_text(text)
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    policy_file = Path(env["ROUTER_POLICY"])
    assert policy_file.parent == Path("/etc/router/policies")
    loaded = load_policy(tmp_path / policy_file.name, env={"VLLM_URL": env["VLLM_URL"]})
    local = loaded.policy.model("local-qwen")
    assert local is not None and local.endpoint == env["VLLM_URL"], name
    assert loaded.policy.auth == "keys"


def test_overlays_differ_where_they_should() -> None:
    dev, prod = render(K8S / "overlays/dev"), render(K8S / "overlays/prod")
    assert {d["metadata"].get("namespace") for d in dev if d["kind"] != "Namespace"} == {
        "hybrid-router-dev"
    }
    assert _one(prod, "HorizontalPodAutoscaler", "hybrid-router")["spec"]["minReplicas"] >= 3
    assert _one(prod, "PodDisruptionBudget", "hybrid-router")["spec"]["minAvailable"] >= 2
    assert not _by_kind(prod, "PersistentVolumeClaim")
    assert _by_kind(dev, "PersistentVolumeClaim")


def _canonical(value: Any) -> Any:
    """Order-insensitive for lists of objects; ConfigMap hash suffixes removed."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, dict) for v in items):
            return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
        return items
    if isinstance(value, str):
        return re.sub(r"^router-policies-[a-z0-9]{10}$", "router-policies", value)
    return value


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(K8S / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d]

    def key(d: Doc) -> str:
        return f"{d['kind']}/{d['metadata']['name']}"

    ours = sorted((_canonical(d) for d in render(K8S / name)), key=key)
    assert ours == sorted((_canonical(d) for d in theirs), key=key)


# ---- compose ---------------------------------------------------------------------------------


def _compose() -> Doc:
    (doc,) = load_yaml_docs(DEPLOY / "compose.yaml")
    return doc


def test_compose_validates_against_the_compose_spec() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_shape_and_mounts() -> None:
    services = _compose()["services"]
    gateways = [s for n, s in services.items() if n.startswith("gateway")]
    assert len(gateways) == 2
    assert services["redis"]["image"] == "redis:8"
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "prometheus" in services
    for gw in gateways:
        assert gw["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        for mount in gw["volumes"]:
            source = mount.split(":", 1)[0]
            assert (DEPLOY / source).resolve().is_file(), source
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert {"gateway-1:8080", "gateway-2:8080"} <= targets


def test_dockerfile_has_variants_non_root_user_and_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^ARG VARIANT=cpu$", text, re.M)
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, re.M)
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    torch_at = text.index('pip install "torch==')
    assert torch_at < text.index("pip install ."), "torch's wheel must come before the project"
