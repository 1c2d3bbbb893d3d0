"""A small kustomize renderer for the manifests in ``deploy/k8s`` (no kubectl needed).

It supports exactly the kustomization features those manifests use, so that the tests run on a
fresh machine with only Python packages:

- ``resources`` (YAML files and directories holding a ``kustomization.yaml``);
- ``namespace`` (set on every namespaced object);
- ``labels`` with ``pairs`` (added to ``metadata.labels``; selectors only with
  ``includeSelectors: true``, pod templates only with ``includeTemplates: true``);
- ``configMapGenerator`` with ``files`` (``key=path`` or ``path``) and ``literals``; the name gets
  a content-hash suffix and references from pod templates follow it, as with kustomize;
- ``patches`` with ``path`` (strategic merge: maps merge, ``null`` deletes a key, the lists that
  Kubernetes merges by key are merged by that key, other lists are replaced, and a patch whose
  top level says ``$patch: delete`` removes its target);
- ``images`` with ``newName`` / ``newTag``.

Anything else in a kustomization is an error, so a manifest cannot silently use a feature that
this renderer would ignore. Paths may point outside the kustomization's directory (kustomize
needs ``--load-restrictor LoadRestrictionsNone`` for that, which ``docs/deploy.md`` shows).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED_KEYS = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "labels",
        "resources",
        "configMapGenerator",
        "patches",
        "images",
    }
)
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "topologySpreadConstraints": "topologyKey",
}
"""List fields that strategic merge patches merge item by item, and the key that pairs items."""


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not support, or is inconsistent."""


def load_yaml_docs(path: Path) -> list[Doc]:
    """Every non-empty YAML document in ``path``."""
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def render(directory: Path) -> list[Doc]:
    """Render the kustomization in ``directory`` into a list of Kubernetes objects."""
    kfile = directory / "kustomization.yaml"
    spec = load_yaml_docs(kfile)[0]
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported keys {sorted(unknown)}")
    docs: list[Doc] = []
    for ref in spec.get("resources", []):
        target = (directory / ref).resolve()
        docs.extend(render(target) if target.is_dir() else load_yaml_docs(target))
    renamed: dict[str, str] = {}
    for gen in spec.get("configMapGenerator", []):
        cm = _config_map(directory, gen)
        renamed[gen["name"]] = cm["metadata"]["name"]
        docs.append(cm)
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{kfile}: only 'path' patches are supported: {patch}")
        for p in load_yaml_docs(directory / patch["path"]):
            docs = _apply_patch(docs, p, kfile)
    for doc in docs:
        _rename_config_maps(doc, renamed)
        _set_images(doc, spec.get("images", []))
        _add_labels(doc, spec.get("labels", []))
        if "namespace" in spec and doc["kind"] not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return docs


def _config_map(directory: Path, gen: Doc) -> Doc:
    unknown = set(gen) - {"name", "files", "literals"}
    if unknown:
        raise KustomizeError(f"configMapGenerator {gen.get('name')}: unsupported {unknown}")
    data: dict[str, str] = {}
    for entry in gen.get("files", []):
        key, _, rel = entry.rpartition("=")
        path = directory / rel
        data[key or path.name] = path.read_text(encoding="utf-8")
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    body = {"kind": "ConfigMap", "name": gen["name"], "data": data}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{gen['name']}-{digest}"},
        "data": data,
    }


def _identity(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _apply_patch(docs: list[Doc], patch: Doc, where: Path) -> list[Doc]:
    target = _identity(patch)
    matches = [d for d in docs if _identity(d) == target]
    if len(matches) != 1:
        raise KustomizeError(f"{where}: patch target {target} matched {len(matches)} objects")
    if patch.get("$patch") == "delete":
        return [d for d in docs if _identity(d) != target]
    merged = strategic_merge(matches[0], patch)
    return [merged if _identity(d) == target else d for d in docs]


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Merge ``patch`` into a copy of ``base`` (the subset of strategic merge described above)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if key == "$patch":
                continue
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out_list = [copy.deepcopy(item) for item in base]
        position = {item.get(key): i for i, item in enumerate(out_list)}
        added = []
        for item in patch:
            if item.get(key) in position:
                i = position[item[key]]
                out_list[i] = strategic_merge(out_list[i], item)
            else:
                added.append(copy.deepcopy(item))
        return added + out_list
    return copy.deepcopy(patch)


def pod_spec(doc: Doc) -> Doc | None:
    """The pod spec of a workload object (Deployment, StatefulSet, ...), if it has one."""
    spec = doc.get("spec", {})
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        result: Doc = template["spec"]
        return result
    return None


def _rename_config_maps(doc: Doc, renamed: dict[str, str]) -> None:
    pod = pod_spec(doc)
    if pod is None or not renamed:
        return
    for volume in pod.get("volumes", []):
        cm = volume.get("configMap")
        if cm and cm.get("name") in renamed:
            cm["name"] = renamed[cm["name"]]
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref and ref.get("name") in renamed:
                ref["name"] = renamed[ref["name"]]
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref.get("name") in renamed:
                ref["name"] = renamed[ref["name"]]


def _set_images(doc: Doc, images: list[Doc]) -> None:
    pod = pod_spec(doc)
    if pod is None:
        return
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for image in images:
            name, _, _tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            tag = image.get("newTag", _tag)
            container["image"] = f"{new_name}:{tag}" if tag else new_name


def _add_labels(doc: Doc, labels: list[Doc]) -> None:
    for entry in labels:
        pairs = entry.get("pairs", {})
        doc.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if entry.get("includeSelectors"):
            raise KustomizeError("labels.includeSelectors is not supported")
        pod = doc.get("spec", {}).get("template") if isinstance(doc.get("spec"), dict) else None
        if entry.get("includeTemplates") and isinstance(pod, dict):
            pod.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
