"""Validate deploy/k8s/ offline: schemas, the KServe InferenceService, and the files together.

    python deploy/validate_k8s.py [FOLDER]        # what `make k8s-validate` runs

1. Every resource against Kubernetes' own schemas with kubernetes-validate in strict mode (unknown
   fields are errors), for the oldest and the newest Kubernetes version we support. Unlike the
   `kubernetes-validate` command, a kind without a schema is an error here, not a warning.
2. The InferenceService (a KServe CRD, for which kubernetes-validate has no schema): its predictor
   is a Kubernetes PodSpec plus KServe's component fields (KServe's Go types inline both), so the
   pod part is validated as a strict Pod and the KServe part against the field types of KServe's
   `ComponentExtensionSpec`; then KServe's custom-predictor rules are checked.
3. The files against each other and the image: selectors match the pod labels, the Service and
   probes name real ports, probes use the V2 health routes, the HPA targets the Deployment, one
   image everywhere, UID and port as in the Dockerfile, WEB_CONCURRENCY one worker per CPU of
   the limit, and a grace period long enough for gunicorn's graceful timeout.
Exit status: 0 valid, 1 problems found (each printed), 2 bad usage or unreadable files.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parents[1]
K8S_DIR = ROOT / "deploy" / "k8s"
#: Oldest and newest Kubernetes versions the manifests must be valid for.
KUBERNETES_VERSIONS = ("1.29", kv.major_minor(kv.latest_version()))
HEALTH_ROUTES = {"/v2/health/live", "/v2/health/ready"}

# KServe serving.kserve.io/v1beta1 InferenceService, from its Go types (pkg/apis/serving/v1beta1):
# PredictorSpec inlines corev1.PodSpec and ComponentExtensionSpec.
ISVC_API_VERSION = "serving.kserve.io/v1beta1"
ISVC_COMPONENTS = {"predictor", "transformer", "explainer"}
_INT = {"type": "integer", "minimum": 0}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
COMPONENT_EXTENSION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "minReplicas": _INT, "maxReplicas": _INT, "scaleTarget": _INT,
        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
        "containerConcurrency": _INT,
        "timeout": _INT,
        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
        "logger": {"type": "object"}, "batcher": {"type": "object"},
        "labels": _STR_MAP, "annotations": _STR_MAP,
        "deploymentStrategy": {"type": "object"},
    },
}
# Built-in model servers: a custom predictor (our image) must not name one as well.
ISVC_FRAMEWORKS = {"sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
                   "huggingface", "pmml", "lightgbm", "paddle", "model", "storageUris",
                   "workerSpec"}
KSERVE_CONTAINER = "kserve-container"
KNATIVE_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}


class Report:
    """Collects problems; prints each check as it passes or fails."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def ok(self, message: str) -> None:
        print(f"ok    {message}")

    def fail(self, message: str) -> None:
        print(f"FAIL  {message}")
        self.problems.append(message)

    def check(self, condition: bool, message: str) -> bool:
        (self.ok if condition else self.fail)(message)
        return condition


def load_documents(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every non-empty YAML document in ``folder``/*.yaml."""
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                if not isinstance(doc, dict):
                    raise ValueError(f"{path}: a document is not a mapping")
                docs.append((path, doc))
    return docs


def listed(items: set[str] | list[str]) -> str:
    """`` (a, b)`` for a non-empty problem list, else nothing."""
    return f" ({', '.join(sorted(items))})" if items else ""


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def validate_schema(report: Report, where: str, doc: dict[str, Any]) -> bool:
    """Strict kubernetes-validate for each version; False if the kind has no schema."""
    for version in KUBERNETES_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.SchemaNotFoundError:
            return False
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(top)"
            report.fail(f"{where}: Kubernetes {version} schema: {path}: {exc.message}")
            return True
    report.ok(f"{where}: Kubernetes {' and '.join(KUBERNETES_VERSIONS)} schemas (strict)")
    return True


def check_inferenceservice(report: Report, where: str, doc: dict[str, Any]) -> None:
    """Schema and custom-predictor checks for a KServe v1beta1 InferenceService."""
    if not report.check(doc.get("apiVersion") == ISVC_API_VERSION,
                        f"{where}: apiVersion is {ISVC_API_VERSION}"):
        return
    unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
    report.check(not unknown, f"{where}: no unknown top-level fields{listed(unknown)}")
    spec = doc.get("spec") or {}
    unknown = set(spec) - ISVC_COMPONENTS
    report.check(not unknown, f"{where}: spec has only predictor, transformer, explainer"
                              f"{listed(unknown)}")
    predictor = spec.get("predictor")
    if not report.check(isinstance(predictor, dict), f"{where}: spec.predictor is a mapping"):
        return
    frameworks = set(predictor) & ISVC_FRAMEWORKS
    report.check(not frameworks, f"{where}: custom predictor names no built-in model server"
                                 f"{listed(frameworks)}")
    extension_keys = set(COMPONENT_EXTENSION_SCHEMA["properties"])
    extension = {k: v for k, v in predictor.items() if k in extension_keys}
    pod_spec = {k: v for k, v in predictor.items() if k not in extension_keys | frameworks}
    errors = sorted(jsonschema.Draft202012Validator(COMPONENT_EXTENSION_SCHEMA)
                    .iter_errors(extension), key=str)
    report.check(not errors, f"{where}: predictor's KServe fields ({', '.join(sorted(extension))})"
                             f" have KServe's types" + "".join(
                                 f"\n      {'.'.join(map(str, e.path))}: {e.message}"
                                 for e in errors))
    if extension.get("minReplicas") is not None and extension.get("maxReplicas"):
        report.check(extension["minReplicas"] <= extension["maxReplicas"],
                     f"{where}: predictor minReplicas <= maxReplicas")
    # The pod part as a Pod: same PodSpec and ObjectMeta schemas the Deployment is checked with.
    as_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": doc.get("metadata") or {},
              "spec": pod_spec}
    validate_schema(report, f"{where}: metadata and predictor pod spec", as_pod)

    containers = pod_spec.get("containers") or []
    serving = [c for c in containers if c.get("name") == KSERVE_CONTAINER]
    if not report.check(len(serving) == 1,
                        f"{where}: one predictor container named {KSERVE_CONTAINER}"):
        return
    container = serving[0]
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    report.check(env.get("PROTOCOL") in ("v1", "v2"),
                 f"{where}: PROTOCOL env is v1 or v2 (KServe's custom-predictor setting), "
                 f"got {env.get('PROTOCOL')!r}")
    reserved = sorted(KNATIVE_RESERVED_ENV & set(env))
    report.check(not reserved, f"{where}: no env variable Knative reserves{listed(reserved)}")
    ports = container.get("ports") or []
    report.check(len(ports) == 1, f"{where}: {KSERVE_CONTAINER} declares exactly one port "
                                  "(Knative serves one; KServe's Service targets the first)")


def containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") == "Deployment":
        return doc["spec"]["template"]["spec"].get("containers") or []
    if doc.get("kind") == "InferenceService":
        return doc["spec"]["predictor"].get("containers") or []
    return []


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    return ((doc["spec"]["template"].get("metadata") or {}).get("labels")) or {}


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def dockerfile_facts(path: Path) -> dict[str, str]:
    """USER and EXPOSE of the Dockerfile (first instruction of each; EXPOSE's ports
    space-separated, HTTP's first, then gRPC's)."""
    facts: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*(USER|EXPOSE)\s+(\S.*?)\s*$", line)
        if match:
            facts.setdefault(match.group(1), match.group(2))
    return facts


def gunicorn_setting(path: Path, name: str) -> int | None:
    """A literal ``name = N`` from gunicorn.conf.py (read, never executed)."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                and isinstance(node.value, ast.Constant)):
            return int(node.value.value)
    return None


def probes(container: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in container:
            yield kind, container[kind]


def check_together(report: Report, docs: list[tuple[Path, dict[str, Any]]]) -> None:
    """Cross-file and image consistency."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc.get("kind", ""), []).append(doc)
    deployments = by_kind.get("Deployment", [])
    if not report.check(len(deployments) == 1, "exactly one Deployment"):
        return
    deploy = deployments[0]
    dname = deploy["metadata"]["name"]
    labels = pod_labels(deploy)
    report.check(selects(deploy["spec"]["selector"].get("matchLabels"), labels),
                 f"Deployment/{dname}: selector matches its pod labels")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    port_names = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    port_numbers = set(port_names.values())

    facts = dockerfile_facts(ROOT / "Dockerfile")
    uid = facts.get("USER", "").split(":")[0]
    exposed = [int(p.split("/")[0]) for p in facts.get("EXPOSE", "").split()]
    for doc in [deploy, *by_kind.get("InferenceService", [])]:
        for c in containers_of(doc):
            ctx = {**(doc["spec"].get("template", {}).get("spec", {}).get("securityContext")
                      or {}), **(c.get("securityContext") or {})}
            where = f"{name_of(doc)} container {c.get('name')}"
            report.check(str(ctx.get("runAsUser")) == uid and ctx.get("runAsNonRoot") is True,
                         f"{where}: runAsNonRoot with the Dockerfile's UID {uid}")
            report.check(ctx.get("readOnlyRootFilesystem") is True
                         and ctx.get("allowPrivilegeEscalation") is False
                         and "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []),
                         f"{where}: read-only root fs, no privilege escalation, all caps dropped")
            declared = {p["containerPort"] for p in c.get("ports") or []}
            if doc is deploy:
                report.check(declared == set(exposed),
                             f"{where}: declares the Dockerfile's EXPOSE {sorted(exposed)}")
            else:   # Knative routes one port: HTTP/1 (http1) or gRPC (h2c)
                knative = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
                report.check(knative in ({"http1": exposed[0]}, *({"h2c": p}
                                                                  for p in exposed[1:])),
                             f"{where}: routes the Dockerfile's HTTP port as http1 or its gRPC "
                             f"port as h2c ({knative})")
            env = {e.get("name"): e.get("value") for e in c.get("env") or []}
            # gunicorn.conf.py keeps the workers' metrics under PROMETHEUS_MULTIPROC_DIR, else
            # in a new folder under /tmp: one of them must be writable on a read-only root.
            mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
            metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or "/tmp/"
            report.check(metrics_dir.startswith("/dev/shm/")
                         or any(metrics_dir.startswith(m.rstrip("/") + "/") for m in mounts),
                         f"{where}: the metrics folder ({metrics_dir}) is on a writable mount")
            limit = (c.get("resources") or {}).get("limits", {}).get("cpu")
            workers = env.get("WEB_CONCURRENCY")
            report.check(workers is not None and limit is not None
                         and int(workers) == cpu_cores(limit),
                         f"{where}: WEB_CONCURRENCY ({workers}) = CPU limit ({limit}): "
                         "one sync worker per CPU")
            for kind, probe in probes(c):
                get = probe.get("httpGet") or {}
                port = get.get("port")
                if "tcpSocket" in probe:   # the only probe a gRPC-only (h2c) port allows
                    port = probe["tcpSocket"].get("port")
                    report.check(port in declared and port != exposed[0],
                                 f"{where}: {kind} connects to the declared gRPC port ({port})")
                    continue
                report.check(get.get("path") in HEALTH_ROUTES
                             and (port in port_names or port in declared),
                             f"{where}: {kind} GETs a V2 health route on a declared port "
                             f"({get.get('path')} on {port})")
            if doc is not deploy:
                report.check(c.get("image") == container.get("image"),
                             f"{where}: same image as the Deployment ({c.get('image')})")
                concurrency = doc["spec"]["predictor"].get("containerConcurrency")
                report.check(concurrency is None or str(concurrency) == workers,
                             f"{where}: containerConcurrency = WEB_CONCURRENCY")

    graceful = gunicorn_setting(ROOT / "service" / "gunicorn.conf.py", "graceful_timeout")
    pre_stop = (container.get("lifecycle") or {}).get("preStop", {}).get("exec", {})
    pause = next((int(a) for a in pre_stop.get("command", [])[1:2] if str(a).isdigit()), 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    report.check(graceful is not None and grace > graceful + pause,
                 f"Deployment/{dname}: terminationGracePeriodSeconds {grace} > preStop {pause} s"
                 f" + gunicorn graceful_timeout {graceful} s")

    for svc in by_kind.get("Service", []):
        where = name_of(svc)
        report.check(selects(svc["spec"].get("selector"), labels),
                     f"{where}: selector picks the Deployment's pods")
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort")
            report.check(target in port_names or target in port_numbers,
                         f"{where}: port {port.get('name')} targets a container port ({target})")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        report.check((ref.get("apiVersion"), ref.get("kind"), ref.get("name"))
                     == ("apps/v1", "Deployment", dname),
                     f"{name_of(hpa)}: scales Deployment/{dname}")
        report.check(hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"],
                     f"{name_of(hpa)}: minReplicas <= maxReplicas")
        report.check(all((container.get("resources") or {}).get("requests", {}).get(
                         m["resource"]["name"]) for m in hpa["spec"].get("metrics", [])
                         if m.get("type") == "Resource"),
                     f"{name_of(hpa)}: the Deployment requests every resource it scales on")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        report.check(selects(pdb["spec"]["selector"].get("matchLabels"), labels),
                     f"{name_of(pdb)}: selector picks the Deployment's pods")


def check_kustomization(report: Report, folder: Path, doc: dict[str, Any]) -> None:
    """Its resources exist and are every plain-Kubernetes file here (not the KServe one)."""
    resources = doc.get("resources") or []
    missing = [r for r in resources if not (folder / r).is_file()]
    report.check(not missing, f"kustomization.yaml: listed resources exist{listed(missing)}")
    plain = {p.name for p, d in load_documents(folder)
             if d.get("kind") not in ("Kustomization", "InferenceService")}
    report.check(plain == set(resources), f"kustomization.yaml: lists every plain resource "
                                       f"({', '.join(sorted(plain))})")
    used = {c.get("image", "").rsplit(":", 1)[0] for _, d in load_documents(folder)
            for c in containers_of(d)}
    renamed = {i.get("name") for i in doc.get("images") or []}
    report.check(renamed <= used, f"kustomization.yaml: images entries name the image in use"
                                  f"{listed(renamed - used)}")


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else K8S_DIR
    if len(argv) > 2 or not folder.is_dir():
        print(f"usage: {argv[0]} [FOLDER of Kubernetes YAML, default {K8S_DIR}]",
              file=sys.stderr)
        return 2
    try:
        docs = load_documents(folder)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = Report()
    for path, doc in docs:
        where = f"{path.name}: {name_of(doc)}"
        if doc.get("kind") == "Kustomization":
            check_kustomization(report, folder, doc)
        elif doc.get("kind") == "InferenceService":
            check_inferenceservice(report, where, doc)
        elif not validate_schema(report, where, doc):
            report.fail(f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
    check_together(report, docs)
    if report.problems:
        print(f"\n{len(report.problems)} problem(s) in {folder}")
        return 1
    print(f"\n{folder}: {len(docs)} documents valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
