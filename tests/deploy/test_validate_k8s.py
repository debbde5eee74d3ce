"""deploy/validate_k8s.py passes the real manifests and reports each mistake it claims to."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import validate_k8s

K8S = Path(validate_k8s.__file__).parent / "k8s"


def edited(tmp_path: Path, filename: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of deploy/k8s with one document of ``filename`` changed by ``edit``."""
    folder = tmp_path / "k8s"
    shutil.copytree(K8S, folder)
    doc = yaml.safe_load((folder / filename).read_text())
    edit(doc)
    (folder / filename).write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return validate_k8s.containers_of(doc)[0]


def set_env(name: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        c = container(doc)
        c["env"] = [e for e in c["env"] if e["name"] != name]
        if value is not None:
            c["env"].append({"name": name, "value": value})
    return edit


def test_the_real_manifests_are_valid(capsys):
    assert validate_k8s.main(["validate_k8s.py"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "InferenceService/numpy-model-server: metadata and predictor pod spec" in out


BROKEN = {
    "unknown field in the Deployment (strict schema)": (
        "deployment.yaml", lambda d: container(d)["livenessProbe"].update(periodSecond=10),
        "periodSecond"),
    "unknown KServe field in the predictor": (
        "inferenceservice.yaml", lambda d: d["spec"]["predictor"].update(minReplica=1),
        "minReplica"),
    "KServe field of the wrong type": (
        "inferenceservice.yaml", lambda d: d["spec"]["predictor"].update(containerConcurrency="2"),
        "containerConcurrency"),
    "custom predictor without PROTOCOL": (
        "inferenceservice.yaml", set_env("PROTOCOL", None), "PROTOCOL"),
    "PORT set where Knative forbids it": (
        "inferenceservice.yaml", set_env("PORT", "8000"), "Knative reserves (PORT)"),
    "a kind with no schema": (
        "service.yaml", lambda d: d.update(apiVersion="v2"), "no schema for v2 Service"),
    "HPA scaling something else": (
        "hpa.yaml", lambda d: d["spec"]["scaleTargetRef"].update(name="other"), "scales"),
    "more workers than CPUs": (
        "deployment.yaml", set_env("WEB_CONCURRENCY", "4"), "one sync worker per CPU"),
    "probe on a route the service does not have": (
        "deployment.yaml",
        lambda d: container(d)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "readinessProbe GETs a V2 health route"),
    "Service pointing at a port the container lacks": (
        "service.yaml", lambda d: d["spec"]["ports"][0].update(targetPort="web"),
        "targets a container port"),
    "read-only root without a writable metrics folder": (
        "deployment.yaml", lambda d: container(d).pop("volumeMounts"), "metrics folder"),
    "root user": (
        "deployment.yaml",
        lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0),
        "runAsNonRoot with the Dockerfile's UID"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_mistake_is_reported(tmp_path, capsys, case):
    filename, edit, expected = BROKEN[case]
    folder = edited(tmp_path, filename, edit)
    assert validate_k8s.main(["validate_k8s.py", str(folder)]) == 1
    failures = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("FAIL")]
    assert failures and any(expected in line for line in failures), failures


def test_a_resource_missing_from_the_kustomization_is_reported(tmp_path, capsys):
    folder = tmp_path / "k8s"
    shutil.copytree(K8S, folder)
    (folder / "extra.yaml").write_text((folder / "pdb.yaml").read_text())
    assert validate_k8s.main(["validate_k8s.py", str(folder)]) == 1
    assert "FAIL  kustomization.yaml: lists every plain resource" in capsys.readouterr().out
