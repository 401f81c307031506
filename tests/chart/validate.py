#!/usr/bin/env python3
"""Validates the Helm chart offline: `helm lint --strict` (Helm SDK from PyPI
helm-python-sdk) for default and non-default values, renders both, validates every core
manifest strictly against the Kubernetes schemas (PyPI kubernetes-validate) and every
KEDA object against KEDA's (npm @kubernetes-models/keda, through validate-keda.mjs).
Exit 0 when all pass; a line per problem otherwise.

    python3 tests/chart/validate.py
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE.parent.parent / "charts" / "hls-farm"
KUBERNETES = "1.30.0"

# Credentials a site gives (the chart has none of its own): test values, not secrets.
SECRETS = {
    "coordinator": {"amqpUrl": "amqp://farm-coordinator:pw-c@rabbitmq:5672/%2f", "databaseUrl": "postgres://farm:pw-d@postgresql:5432/farm",
                    "apiToken": "a-test-token-of-32-characters-xx", "rabbitmqManagementUrl": "http://farm-monitor:pw-m@rabbitmq:15672/%2f"},
    "worker": {"amqpUrl": "amqp://farm-worker:pw-w@rabbitmq:5672/%2f"},
    "taskKey": {"value": "a-test-task-key-of-at-least-32-characters"},
}

# Swift credentials (Keystone v3 application credential) for swift:// locations.
SWIFT = {"OS_AUTH_URL": "https://keystone.example:5000/v3", "OS_APPLICATION_CREDENTIAL_ID": "ac-test",
         "OS_APPLICATION_CREDENTIAL_SECRET": "ac-test-secret", "OS_REGION_NAME": "RegionOne"}

# The defaults (with credentials), and a second set that turns every switch the other way.
VALUE_SETS = {
    "defaults": {"secrets": SECRETS},
    "hpa-ingress-monitoring-existing-secret": {
        "secrets": {"coordinator": {"existingSecret": "farm-coordinator"}, "worker": {"existingSecret": "farm-worker"},
                    "taskKey": {"existingSecret": "farm-task-key"}, "principals": {"existingSecret": "farm-principals"},
                    "masterKey": {"existingSecret": "farm-master-key"}},
        "networkPolicy": {"enabled": False},
        "autoscaling": {"keda": {"enabled": False}, "hpa": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}},
        "coordinator": {"replicas": 2, "ingress": {"enabled": True, "className": "nginx",
                                                    "tls": [{"hosts": ["farm.example.com"], "secretName": "farm-tls"}]}},
        "worker": {"drainSeconds": 1200, "deletionCost": {"enabled": False}, "scratchSize": "8Gi"},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                       "grafanaDashboard": {"enabled": False}},
    },
    "no-autoscaling-swift": {
        "secrets": {**SECRETS, "worker": {**SECRETS["worker"], "swift": SWIFT}, "coordinator": {**SECRETS["coordinator"], "swift": SWIFT}},
        "autoscaling": {"keda": {"enabled": False}, "hpa": {"enabled": False}}, "worker": {"replicas": 3}},
    # One coordinator replica (a small site): no budget that would block its node's drain.
    "one-coordinator": {"secrets": SECRETS, "coordinator": {"replicas": 1}},
}

# Values the chart must refuse to render: no credentials, or placeholders left in.
# Each with what the refusal must say.
REFUSED = {
    "no-credentials": ({}, "must be set"),
    "placeholder-token": ({"secrets": {**SECRETS, "coordinator": {**SECRETS["coordinator"], "apiToken": "change-me-to-a-long-random-token"}}}, "must be set"),
    "no-task-key": ({"secrets": {**SECRETS, "taskKey": {"value": ""}}}, "must be set"),
    "swift-typo": ({"secrets": {**SECRETS, "worker": {**SECRETS["worker"], "swift": {"OS_PASSWD": "x"}}}}, "not a Swift variable"),
    "replicas-on-sqlite": ({"secrets": {**SECRETS, "coordinator": {**SECRETS["coordinator"], "databaseUrl": "sqlite:///scratch/farm.db"}}},
                           "needs PostgreSQL"),
}

# Custom resources without a schema available offline: checked for shape only.
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def main() -> int:
    problems = []
    keda_files = []
    tmp = Path(tempfile.mkdtemp(prefix="chart-"))
    seen_kinds = set()
    for name, values in VALUE_SETS.items():
        report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
        for m in report.get("messages", []):
            if m["severity"] >= 2:
                problems.append(f"{name}: helm lint: {m['path']}: {m['error']}")
        problems += [f"{name}: helm lint: {e}" for e in report.get("errors", [])]
        rendered = helm.Chart.load(str(CHART)).render(values, name="farm", namespace="media")
        docs = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
        if not docs:
            problems.append(f"{name}: nothing rendered")
        for i, doc in enumerate(docs):
            kind, api = doc.get("kind"), doc.get("apiVersion", "")
            seen_kinds.add(kind)
            where = f"{name}: {kind} {doc.get('metadata', {}).get('name')}"
            if api.startswith("keda.sh/"):
                path = tmp / f"{name}-{i}.json"
                path.write_text(json.dumps(doc))
                keda_files.append(str(path))
            elif (api, kind) in OPERATOR_KINDS:
                if not isinstance(doc.get("spec"), dict):
                    problems.append(f"{where}: no spec")
                if kind == "PrometheusRule" and not doc["spec"].get("groups"):
                    problems.append(f"{where}: no rule groups")
            else:
                try:
                    kubernetes_validate.validate(doc, KUBERNETES, strict=True)
                except kubernetes_validate.ValidationError as e:
                    problems.append(f"{where}: {e.message} at {'/'.join(map(str, e.path))}")
        checks(name, values, docs, problems)
    for name, (values, reason) in REFUSED.items():
        try:
            helm.Chart.load(str(CHART)).render(values, name="farm", namespace="media")
            problems.append(f"{name}: rendered although a credential is missing or a placeholder")
        except Exception as e:  # the SDK raises Helm's own error type
            if reason not in str(e):
                problems.append(f"{name}: refused for another reason: {e}")
    if keda_files:
        run = subprocess.run(["node", str(HERE / "validate-keda.mjs"), *keda_files], cwd=HERE, capture_output=True, text=True)
        if run.returncode != 0:
            problems.append(f"KEDA objects: {run.stderr.strip() or run.stdout.strip()}")
    for p in problems:
        print(p)
    print(f"{len(VALUE_SETS)} value sets, kinds {sorted(seen_kinds)}, {len(keda_files)} KEDA objects: "
          + ("OK" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


def checks(name, values, docs, problems):
    """What the chart promises beyond schemas: drain-safe scale-down, probes, security."""
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    worker = by.get(("Deployment", "farm-hls-farm-worker"))
    if worker is None:
        problems.append(f"{name}: no worker Deployment")
        return
    pod = worker["spec"]["template"]["spec"]
    main = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in main["env"]}
    # Swift credentials reach both components from their own Secret, when the site gives them.
    for component in ("worker", "coordinator"):
        given = values.get("secrets", {}).get(component, {}).get("swift", {})
        secret = by.get(("Secret", f"farm-hls-farm-{component}"))
        data = (secret or {}).get("stringData", {})
        if any(data.get(k) != v for k, v in given.items()):
            problems.append(f"{name}: the {component} Secret does not hold its Swift credentials: {sorted(data)}")
    if "ST_AUTH" not in env or "OS_APPLICATION_CREDENTIAL_SECRET" not in env:
        problems.append(f"{name}: the worker does not take the Swift variables from its Secret")
    drain = int(env["FARM_DRAIN_SECONDS"])
    if pod["terminationGracePeriodSeconds"] <= drain:
        problems.append(f"{name}: grace period {pod['terminationGracePeriodSeconds']} s is not above the drain {drain} s")
    if main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])[-1:] != ["drain"]:
        problems.append(f"{name}: the worker has no preStop that starts the drain")
    for c in pod["containers"] + by[("Deployment", "farm-hls-farm-coordinator")]["spec"]["template"]["spec"]["containers"]:
        sc = c.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False):
            problems.append(f"{name}: container {c['name']} is not read-only and unprivileged")
        if "resources" not in c or "limits" not in c["resources"]:
            problems.append(f"{name}: container {c['name']} has no resource limits")
    coordinator_pod = by[("Deployment", "farm-hls-farm-coordinator")]["spec"]["template"]["spec"]
    for who, p in (("worker", pod), ("coordinator", coordinator_pod)):
        if p.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: the {who} pod mounts the Kubernetes API token into every container")
        envs = {e["name"] for c in p["containers"][:1] for e in c["env"]}
        if "FARM_TASK_KEY_FILE" not in envs:
            problems.append(f"{name}: the {who} has no task key")
    principals = values.get("secrets", {}).get("principals", {}).get("existingSecret")
    c = coordinator_pod["containers"][0]
    file = {e["name"]: e.get("value") for e in c["env"]}.get("FARM_PRINCIPALS_FILE")
    mounted = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    secrets = {v["name"]: v.get("secret", {}).get("secretName") for v in coordinator_pod.get("volumes", [])}
    if principals and not (file and mounted.get("principals") and file.startswith(mounted["principals"] + "/") and secrets.get("principals") == principals):
        problems.append(f"{name}: the principals Secret {principals} is not mounted where FARM_PRINCIPALS_FILE points ({file})")
    if not principals and file:
        problems.append(f"{name}: FARM_PRINCIPALS_FILE set without a principals Secret")
    master = values.get("secrets", {}).get("masterKey", {}).get("existingSecret")
    key_file = {e["name"]: e.get("value") for e in c["env"]}.get("FARM_MASTER_KEY_FILE")
    if master and not (key_file and mounted.get("master-key") and key_file.startswith(mounted["master-key"] + "/") and secrets.get("master-key") == master):
        problems.append(f"{name}: the master key Secret {master} is not mounted where FARM_MASTER_KEY_FILE points ({key_file})")
    worker_envs = {e["name"] for e in pod["containers"][0]["env"]}
    worker_mounts = [m["name"] for c2 in pod["containers"] for m in c2.get("volumeMounts", [])]
    if "FARM_MASTER_KEY_FILE" in worker_envs or "master-key" in worker_mounts:
        problems.append(f"{name}: workers must never see the master key")
    token_mounts = [c["name"] for c in pod["containers"] for m in c.get("volumeMounts", []) if m["mountPath"].startswith("/var/run/secrets/kubernetes.io")]
    if token_mounts not in ([], ["deletion-cost"]):
        problems.append(f"{name}: the Kubernetes API token is mounted into {token_mounts}, not the deletion-cost sidecar alone")
    secret_of = lambda p: {e["valueFrom"]["secretKeyRef"]["name"] for e in p["containers"][0]["env"] if e["name"] == "AMQP_URL"}
    if secret_of(pod) == secret_of(coordinator_pod):
        problems.append(f"{name}: coordinator and workers share broker credentials")
    if values.get("networkPolicy", {}).get("enabled", True) and not [d for d in docs if d["kind"] == "NetworkPolicy"]:
        problems.append(f"{name}: no NetworkPolicy")
    if pod["securityContext"].get("runAsNonRoot") is not True:
        problems.append(f"{name}: pods may run as root")
    if not any(v.get("name") == "scratch" and "emptyDir" in v for v in pod["volumes"]):
        problems.append(f"{name}: no scratch emptyDir")
    keda = values.get("autoscaling", {}).get("keda", {}).get("enabled", True)
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    if keda:
        triggers = scaled[0]["spec"]["triggers"] if scaled else []
        if not triggers or any(t["metadata"].get("protocol") != "http" or t["metadata"].get("mode") != "QueueLength" for t in triggers):
            problems.append(f"{name}: KEDA triggers must use protocol http and mode QueueLength")
        if scaled and scaled[0]["spec"].get("minReplicaCount") != 0:
            problems.append(f"{name}: workers do not scale to zero by default")
        if "replicas" in worker["spec"]:
            problems.append(f"{name}: the worker Deployment sets replicas while KEDA scales it")
    elif scaled:
        problems.append(f"{name}: a ScaledObject although KEDA is off")
    replicas_and_drains(name, values, docs, problems)
    if values.get("monitoring", {}).get("grafanaDashboard", {}).get("enabled", True):
        dash = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
        if not dash or not json.loads(next(iter(dash[0]["data"].values())))["panels"]:
            problems.append(f"{name}: no dashboard ConfigMap for the Grafana sidecar")



def forbids_every_eviction(pdb, replicas):
    """Whether a PodDisruptionBudget leaves no voluntary eviction possible (kubectl drain
    then never finishes) for a Deployment of `replicas` pods (None: an autoscaler decides)."""
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        value = spec["maxUnavailable"]
        return value in (0, "0%")
    value = spec.get("minAvailable")
    if isinstance(value, str) and value.endswith("%"):
        return value == "100%"
    return replicas is not None and value >= replicas


def replicas_and_drains(name, values, docs, problems):
    """Coordinator replicas as asked (two by default), spread over nodes, and no budget
    that forbids every eviction."""
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    coordinator = deployments["farm-hls-farm-coordinator"]
    replicas = coordinator["spec"]["replicas"]
    wanted = values.get("coordinator", {}).get("replicas", 2)
    if replicas != wanted:
        problems.append(f"{name}: the coordinator runs {replicas} replicas, asked {wanted} (default 2)")
    spread = coordinator["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity")
    if replicas > 1 and not spread:
        problems.append(f"{name}: {replicas} coordinator replicas without anti-affinity across nodes")
    env = {e["name"]: e.get("value") for e in coordinator["spec"]["template"]["spec"]["containers"][0]["env"]}
    if "FARM_LEASE_SECONDS" not in env:
        problems.append(f"{name}: the coordinator is not given its lease time")
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for pdb in pdbs:
        component = pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        target = deployments.get(f"farm-hls-farm-{component}")
        count = target["spec"].get("replicas") if target else None
        if forbids_every_eviction(pdb, count):
            problems.append(f"{name}: the {component} PodDisruptionBudget {pdb['spec']} forbids every eviction of its {count} pods")
    has_coordinator_pdb = any(p["metadata"]["name"] == "farm-hls-farm-coordinator" for p in pdbs)
    if has_coordinator_pdb != (replicas > 1):
        problems.append(f"{name}: {replicas} coordinator replicas {'without' if replicas > 1 else 'with'} a PodDisruptionBudget")


if __name__ == "__main__":
    sys.exit(main())
