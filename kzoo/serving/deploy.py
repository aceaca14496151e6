"""Checks of the deployment files under `serving/` (and of an export tree's configs).

`check(serving_dir, export_root=None)` returns a list of problems (empty: all
good); the tests run it on the repository's `serving/`, so the files cannot drift
from what `kzoo export` writes and `kzoo serve` speaks:

- `docker-compose.yml`: `tensorflow/serving` (CPU) and `:latest-gpu` (profile
  `gpu`, a GPU reservation), both mounting `../export` at `/models` read-only and
  reading `/models/models.config`, ports 8500 (gRPC) and 8501 (REST);
- `config/monitoring.config` (Prometheus at TF Serving's path) and
  `config/batching.config` (`--enable_batching`): only the fields of TF Serving's
  `MonitoringConfig` / `BatchingParameters` (whose protos the pip package lacks,
  so field names are checked here);
- `triton/docker-compose.yml`: Triton with `--model-repository=/models` on the tree;
- `k8s/tf-serving.yaml`: Deployment + Service + HorizontalPodAutoscaler (+ the
  ConfigMap holding the two config files verbatim), readiness on
  `/v1/models/<name>`, selectors that match;
- with `export_root`: `models.config` parses as the official `ModelServerConfig`
  and lists exactly the SavedModels of the tree; every `config.pbtxt` parses as
  Triton's `ModelConfig` and names its directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from kzoo.errors import KzooError

MONITORING_FIELDS = {"prometheus_config", "enable", "path"}
BATCHING_FIELDS = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                   "thread_pool_name", "allowed_batch_sizes", "pad_variable_length_inputs",
                   "enable_large_batch_splitting", "value"}
TF_ARGS = {"--model_config_file=/models/models.config", "--monitoring_config_file=/config/monitoring.config",
           "--enable_batching=true", "--batching_parameters_file=/config/batching.config"}
READINESS = re.compile(r"^/v1/models/[a-z0-9][a-z0-9_.-]*$")


def _yaml(path, problems, many=False):
    try:
        import yaml
    except ImportError:
        raise KzooError("checking deployment files needs PyYAML: pip install pyyaml") from None
    try:
        text = Path(path).read_text()
        return list(yaml.safe_load_all(text)) if many else yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        problems.append(f"{path}: {err}")
        return [] if many else {}


def _fields(text):
    return set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*[:{]", re.sub(r"#.*", "", text)))


def check_text_config(path, allowed, problems):
    try:
        text = Path(path).read_text()
    except OSError as err:
        problems.append(f"{path}: {err}")
        return None
    unknown = _fields(text) - allowed
    if unknown:
        problems.append(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    if text.count("{") != text.count("}"):
        problems.append(f"{path}: unbalanced braces")
    return text


def _ports(service):
    return {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}


def check_compose(path, problems):
    compose = _yaml(path, problems)
    services = compose.get("services") or {}
    for name, image, gpu in (("tf-serving", "tensorflow/serving:latest", False),
                             ("tf-serving-gpu", "tensorflow/serving:latest-gpu", True)):
        s = services.get(name)
        if not s:
            problems.append(f"{path}: no service {name}")
            continue
        if s.get("image") != image:
            problems.append(f"{path}: {name} runs {s.get('image')}, expected {image}")
        if "../export:/models:ro" not in s.get("volumes", []):
            problems.append(f"{path}: {name} does not mount ../export at /models (read-only)")
        missing = TF_ARGS - set(s.get("command", []))
        if missing:
            problems.append(f"{path}: {name} lacks {', '.join(sorted(missing))}")
        if _ports(s) != {"8500", "8501"}:
            problems.append(f"{path}: {name} should publish 8500 (gRPC) and 8501 (REST)")
        devices = (s.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if gpu != any("gpu" in d.get("capabilities", []) for d in devices):
            problems.append(f"{path}: {name} {'needs' if gpu else 'must not have'} a GPU reservation")
    if "gpu" not in (services.get("tf-serving-gpu") or {}).get("profiles", []):
        problems.append(f"{path}: tf-serving-gpu should be in the `gpu` profile (not started by default)")


def check_triton(path, problems):
    s = (_yaml(path, problems).get("services") or {}).get("triton") or {}
    if not str(s.get("image", "")).startswith("nvcr.io/nvidia/tritonserver:"):
        problems.append(f"{path}: service triton should run nvcr.io/nvidia/tritonserver")
    if "--model-repository=/models" not in s.get("command", []):
        problems.append(f"{path}: triton lacks --model-repository=/models")
    if "../../export:/models:ro" not in s.get("volumes", []):
        problems.append(f"{path}: triton does not mount ../../export at /models (read-only)")
    if _ports(s) != {"8000", "8001", "8002"}:
        problems.append(f"{path}: triton should publish 8000 (HTTP), 8001 (gRPC), 8002 (metrics)")


def check_k8s(path, configs, problems):
    docs = {d.get("kind"): d for d in _yaml(path, problems, many=True) if isinstance(d, dict)}
    missing = {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"} - set(docs)
    if missing:
        problems.append(f"{path}: missing {', '.join(sorted(missing))}")
        return
    dep, svc, hpa, cm = (docs[k] for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"))
    pod = dep["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    if dep["spec"]["selector"].get("matchLabels") != labels or svc["spec"].get("selector") != labels:
        problems.append(f"{path}: Deployment/Service selectors do not match the pod labels {labels}")
    container = pod["spec"]["containers"][0]
    if not str(container.get("image", "")).startswith("tensorflow/serving"):
        problems.append(f"{path}: the container should run tensorflow/serving")
    if TF_ARGS - set(container.get("args", [])):
        problems.append(f"{path}: container lacks {', '.join(sorted(TF_ARGS - set(container.get('args', []))))}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    if not READINESS.match(str(probe.get("path", ""))) or ports.get(probe.get("port")) != 8501:
        problems.append(f"{path}: readinessProbe must GET /v1/models/<name> on the REST port 8501")
    target = hpa["spec"].get("scaleTargetRef", {})
    if (target.get("kind"), target.get("name")) != ("Deployment", dep["metadata"]["name"]):
        problems.append(f"{path}: the HorizontalPodAutoscaler does not scale the Deployment")
    for name, text in configs.items():
        if text is not None and cm.get("data", {}).get(name, "").strip() != _strip_comments(text):
            problems.append(f"{path}: ConfigMap {name} differs from serving/config/{name}")


def _strip_comments(text):
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")).strip()


def check_export(root, problems):
    from google.protobuf import text_format

    from kzoo.export.serving_config import saved_model_names

    root = Path(root)
    try:
        from tensorflow_serving.config import model_server_config_pb2
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        raise KzooError(f"checking an export tree needs the serving extra ({err})") from None
    try:
        config = text_format.Parse((root / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
        listed = sorted(c.name for c in config.model_config_list.config)
        if listed != saved_model_names(root):
            problems.append(f"{root}/models.config lists {listed}; the tree has {saved_model_names(root)}")
        for c in config.model_config_list.config:
            if c.base_path != f"/models/{c.name}":
                problems.append(f"{root}/models.config: {c.name} base_path {c.base_path} is not /models/{c.name}")
    except (OSError, text_format.ParseError) as err:
        problems.append(f"{root}/models.config: {err}")
    for pbtxt in sorted(root.glob("*/config.pbtxt")):
        try:
            mc = text_format.Parse(pbtxt.read_text(), model_config_pb2.ModelConfig())
            if mc.name != pbtxt.parent.name:
                problems.append(f"{pbtxt}: name {mc.name!r} is not the directory name")
        except text_format.ParseError as err:
            problems.append(f"{pbtxt}: {err}")


def check(serving_dir="serving", export_root=None):
    """Problems with the deployment files (and the export tree's configs); see module docstring."""
    serving_dir = Path(serving_dir)
    problems = []
    configs = {"monitoring.config": check_text_config(serving_dir / "config" / "monitoring.config",
                                                      MONITORING_FIELDS, problems),
               "batching.config": check_text_config(serving_dir / "config" / "batching.config",
                                                    BATCHING_FIELDS, problems)}
    if configs["monitoring.config"] is not None and '"/monitoring/prometheus/metrics"' not in configs[
            "monitoring.config"]:
        problems.append(f"{serving_dir}/config/monitoring.config: Prometheus path should be "
                        "/monitoring/prometheus/metrics (as kzoo serve)")
    check_compose(serving_dir / "docker-compose.yml", problems)
    check_triton(serving_dir / "triton" / "docker-compose.yml", problems)
    check_k8s(serving_dir / "k8s" / "tf-serving.yaml", configs, problems)
    if export_root is not None:
        check_export(export_root, problems)
    return problems
