"""The manifest tests' kustomize renderer: strategic merge and generator semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.kustomize_render import KustomizeError, render, strategic_merge


def test_maps_merge_and_null_deletes() -> None:
    base = {"a": 1, "b": {"c": 2, "d": 3}}
    assert strategic_merge(base, {"b": {"c": 20, "d": None}, "e": 5}) == {
        "a": 1,
        "b": {"c": 20},
        "e": 5,
    }
    assert base == {"a": 1, "b": {"c": 2, "d": 3}}, "the base is not changed"


def test_keyed_lists_merge_by_key_and_other_lists_are_replaced() -> None:
    base = {
        "containers": [{"name": "gw", "env": [{"name": "A", "value": "1"}], "args": ["x", "y"]}]
    }
    patch = {
        "containers": [
            {"name": "gw", "env": [{"name": "B", "value": "2"}], "args": ["z"]},
            {"name": "sidecar"},
        ]
    }
    out = strategic_merge(base, patch)
    gw = next(c for c in out["containers"] if c["name"] == "gw")
    assert {e["name"] for e in gw["env"]} == {"A", "B"}
    assert gw["args"] == ["z"]
    assert {c["name"] for c in out["containers"]} == {"gw", "sidecar"}


def _write(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data))


def test_generator_hash_follows_content_and_references_are_renamed(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gw"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "gw", "image": "img"}],
                    "volumes": [{"name": "p", "configMap": {"name": "policies"}}],
                }
            }
        },
    }
    _write(tmp_path / "deploy.yaml", deployment)
    _write(
        tmp_path / "kustomization.yaml",
        {
            "resources": ["deploy.yaml"],
            "namespace": "ns",
            "configMapGenerator": [{"name": "policies", "files": ["policy.yaml"]}],
            "images": [{"name": "img", "newName": "reg/img", "newTag": "1"}],
        },
    )
    first = render(tmp_path)
    cm = next(d for d in first if d["kind"] == "ConfigMap")
    dep = next(d for d in first if d["kind"] == "Deployment")
    assert cm["metadata"]["name"].startswith("policies-")
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    assert pod["containers"][0]["image"] == "reg/img:1"
    assert dep["metadata"]["namespace"] == "ns"
    (tmp_path / "policy.yaml").write_text("version: 1\nauth: keys\n")
    again = next(d for d in render(tmp_path) if d["kind"] == "ConfigMap")
    assert again["metadata"]["name"] != cm["metadata"]["name"]


def test_unsupported_features_are_errors(tmp_path: Path) -> None:
    _write(tmp_path / "kustomization.yaml", {"resources": [], "helmCharts": []})
    with pytest.raises(KustomizeError, match="helmCharts"):
        render(tmp_path)
