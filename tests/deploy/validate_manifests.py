"""Validate rendered manifests offline; runs in the serving side venv (kubernetes-validate).

    python validate_manifests.py --crds DIR --versions 1.27.0 1.37.0 -- FILE...

Built-in kinds go through ``kubernetes_validate.validate(strict=True)`` for every version;
custom resources through the CRD schemas kept in DIR, and the InferenceService predictor's
inlined PodSpec through Kubernetes' own strict PodSpec schema. Prints a JSON list of problems.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

CRD_SCHEMAS = {"ServiceMonitor": "servicemonitor-v1.schema.json",
               "InferenceService": "inferenceservice-v1beta1.schema.json"}


def problems_in(doc: dict, versions: list[str], crds: Path) -> list[str]:
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if doc.get("kind") in CRD_SCHEMAS:
        schema = json.loads((crds / CRD_SCHEMAS[doc["kind"]]).read_text())
        found = [f"{name}: {e.json_path}: {e.message}"
                 for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
        if doc["kind"] == "InferenceService":
            found += _predictor_podspec(doc, schema, versions, name)
        return found
    return _strict_errors(doc, versions, name)


def _strict_errors(doc: dict, versions: list[str], label: str) -> list[str]:
    """Kubernetes' own strict schema for ``doc``, in every version."""
    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{label} (k8s {version}): {getattr(exc, 'message', exc)}")
        except kubernetes_validate.SchemaNotFoundError:
            found.append(f"{label}: no schema for {doc.get('apiVersion')} in k8s {version}")
    return found


def _predictor_podspec(doc: dict, schema: dict, versions: list[str], name: str) -> list[str]:
    extension = schema["properties"]["spec"]["properties"]["predictor"]["properties"]
    pod_spec = {k: v for k, v in doc["spec"]["predictor"].items() if k not in extension}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": pod_spec}
    return _strict_errors(pod, versions, f"{name}.spec.predictor as PodSpec")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crds", type=Path, required=True)
    parser.add_argument("--versions", nargs="+", required=True)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    problems = []
    for path in args.files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                problems += [f"{path.name}: {p}" for p in problems_in(doc, args.versions, args.crds)]
    json.dump(problems, sys.stdout)


if __name__ == "__main__":
    main()
