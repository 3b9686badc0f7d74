"""Token auth, network reach and S3 credentials in the deploy manifests: offline, from the files alone.

The RayJobs are checked against KubeRay 1.7.0's CRD (``authOptions``: ``mode``, ``secretName``); the
NetworkPolicy's rules against the same CRD's copy of Kubernetes' ``NetworkPolicyIngressRule`` and
``LabelSelector`` schemas (``spec.rayClusterSpec.networkPolicy``), closed as in ``test_manifests``.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from packaging.version import Version
from test_manifests import DEPLOY, RAYJOB_SCHEMA, RAYJOBS, UniqueKeyLoader, closed, load

SECRET = "fcn-archive-ray-token"
TOKEN_FROM_SECRET = {"secretKeyRef": {"name": SECRET, "key": "auth_token"}}


def ray_containers(spec: dict) -> dict[str, dict]:
    """Every container that runs Ray or talks to it: head, workers, submitter (``where -> container``)."""
    cluster = spec["rayClusterSpec"]
    found = {f"head/{c['name']}": c for c in cluster["headGroupSpec"]["template"]["spec"]["containers"]}
    for group in cluster["workerGroupSpecs"]:
        found |= {f"{group['groupName']}/{c['name']}": c for c in group["template"]["spec"]["containers"]}
    found |= {f"submitter/{c['name']}": c for c in spec["submitterPodTemplate"]["spec"]["containers"]}
    if cluster.get("enableInTreeAutoscaling"):
        found["autoscaler"] = cluster["autoscalerOptions"]
    return found


def env_of(container: dict) -> dict[str, dict]:
    return {var["name"]: var for var in container.get("env", [])}


@pytest.mark.parametrize("name", RAYJOBS)
def test_token_auth_is_on_for_every_ray_process(name):
    spec = load(name)["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": SECRET}
    assert Version(cluster["rayVersion"]) >= Version("2.52"), "KubeRay refuses token mode below Ray 2.52"
    for where, container in ray_containers(spec).items():
        env = env_of(container)
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{name} {where}: RAY_AUTH_MODE=token"
        # the token comes from the Secret authOptions names, the one KubeRay itself reads to poll the job
        assert env.get("RAY_AUTH_TOKEN", {}).get("valueFrom") == TOKEN_FROM_SECRET, f"{name} {where}"


@pytest.mark.parametrize("name", RAYJOBS)
def test_no_secret_is_written_in_a_manifest_or_the_runtime_env(name):
    spec = load(name)["spec"]
    for where, container in ray_containers(spec).items():
        for var in container.get("env", []):
            if re.search(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY", var["name"]):
                assert "value" not in var and "valueFrom" in var, f"{name} {where}: {var['name']} written inline"
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert not [k for k in runtime_env.get("env_vars", {}) if k.startswith(("RAY_AUTH", "AWS_SECRET", "AWS_ACCESS"))]


@pytest.mark.parametrize("name", RAYJOBS)
def test_s3_access_comes_from_the_service_account_first(name):
    cluster = load(name)["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "fcn-archive", "IRSA (or Pod Identity) for S3"
        env = [var for container in pod["spec"]["containers"] for var in container.get("env", [])]
        refs = [var.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for var in env]
        assert "aws-credentials" not in refs, "the Secret variant is the commented alternative (non-AWS S3)"
    # ... and the Secret variant is still there, commented, for S3 outside AWS
    assert (DEPLOY / name).read_text().count("#       name: aws-credentials") >= 2


@pytest.mark.parametrize("name", RAYJOBS)
def test_the_submitter_runs_the_clusters_image(name):
    spec = load(name)["spec"]
    images = {c["image"] for c in ray_containers(spec).values() if "image" in c}
    assert len(images) == 1, images
    assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"  # a Kubernetes Job's pod


@pytest.fixture(scope="module")
def crd():
    return json.loads(RAYJOB_SCHEMA.read_text())


def test_the_crd_refuses_a_wrong_auth_setting(crd):
    validator = jsonschema.Draft7Validator(closed(crd))
    for bad in ({"mode": "on"}, {"mode": "token", "secretname": SECRET}, {"mode": "token", "secretName": 1}):
        manifest = load("rayjob.yaml")
        manifest["spec"]["rayClusterSpec"]["authOptions"] = bad
        assert not validator.is_valid(manifest), bad


def network_policies() -> dict[str, dict]:
    docs = yaml.load_all((DEPLOY / "networkpolicy.yaml").read_text(), Loader=UniqueKeyLoader)  # noqa: S506
    return {doc["metadata"]["name"]: doc for doc in docs}


def matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels here, so this test can read them"
    return selector.get("matchLabels", {}).items() <= labels.items()


def pod_labels(name: str) -> dict[str, dict]:
    """The labels each pod of RayJob ``name`` will carry: its template's, plus KubeRay's own."""
    spec = load(name)["spec"]
    cluster = spec["rayClusterSpec"]
    ray_node = {"ray.io/is-ray-node": "yes"}
    head = cluster["headGroupSpec"]["template"]["metadata"]["labels"]
    found = {"head": head | ray_node | {"ray.io/node-type": "head"}}
    for group in cluster["workerGroupSpecs"]:
        found[group["groupName"]] = group["template"]["metadata"]["labels"] | ray_node | {"ray.io/node-type": "worker"}
    found["submitter"] = spec["submitterPodTemplate"]["metadata"]["labels"]
    found["operator"] = {"app.kubernetes.io/name": "kuberay-operator"}  # kuberay-operator Helm chart
    return found


def test_network_policies_match_the_kubernetes_schema(crd):
    rules = crd["properties"]["spec"]["properties"]["rayClusterSpec"]["properties"]["networkPolicy"]
    rule = closed(rules["properties"]["head"]["properties"]["ingressRules"]["items"])
    selector = closed(rule["properties"]["from"]["items"]["properties"]["podSelector"])
    spec_schema = {
        "type": "object",
        "required": ["podSelector", "policyTypes", "ingress"],
        "additionalProperties": False,
        "properties": {
            "podSelector": selector,
            "policyTypes": {"type": "array", "items": {"enum": ["Ingress", "Egress"]}},
            "ingress": {"type": "array", "items": rule},
        },
    }
    policies = network_policies()
    assert set(policies) == {"fcn-archive-ray-head", "fcn-archive-ray-workers"}
    for policy in policies.values():
        assert (policy["apiVersion"], policy["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
        jsonschema.validate(policy["spec"], spec_schema)
        assert all(r.get("from") for r in policy["spec"]["ingress"]), "a rule without `from` admits every pod"


@pytest.mark.parametrize("name", RAYJOBS)
def test_only_the_cluster_the_submitter_and_the_operator_reach_the_head(name):
    labels = pod_labels(name)
    head, workers = network_policies()["fcn-archive-ray-head"]["spec"], network_policies()["fcn-archive-ray-workers"]
    assert matches(head["podSelector"], labels["head"]) and not matches(head["podSelector"], labels["gpu"])
    assert matches(workers["spec"]["podSelector"], labels["gpu"])

    labels["stranger"] = {"app.kubernetes.io/name": "something-else", "ray.io/is-ray-node": "yes"}
    for who, on_head, on_workers in [
        ("gpu", None, None),  # None: every port
        ("head", None, None),
        ("submitter", {8265}, set()),
        ("operator", {8265}, set()),
        ("stranger", set(), set()),  # any other pod, a Ray node of another cluster included
    ]:
        assert ports_for(labels[who], head) == on_head, who
        assert ports_for(labels[who], workers["spec"]) == on_workers, who


def ports_for(labels: dict, policy: dict) -> set | None:
    """The ports a pod with ``labels`` may open on the policy's pods; ``None`` for all of them."""
    reach = set()
    for rule in policy["ingress"]:
        # a peer without podSelector (a namespace or an IP block alone) would admit every pod there
        if any(matches(peer.get("podSelector", {}), labels) for peer in rule["from"]):
            if "ports" not in rule:
                return None
            reach |= {port["port"] for port in rule["ports"]}
    return reach


def test_cluster_launcher_runs_ray_in_token_mode_inside_the_container():
    config = load("cluster-aws.yaml")
    options = config["docker"]["run_options"]
    assert "--env RAY_AUTH_MODE=token" in options, "the container's env: every docker exec sees it"
    (path,) = [o.split("=", 1)[1] for o in options if o.startswith("--env RAY_AUTH_TOKEN_PATH=")]
    mounts = config["file_mounts"]
    (folder,) = [remote for remote in mounts if path.startswith(remote.rstrip("/") + "/")]
    assert mounts[folder].startswith("~/"), "the token file comes from the submitting machine, not the repository"
    text = (DEPLOY / "cluster-aws.yaml").read_text()
    assert "RAY_AUTH_TOKEN=" not in text, "never the token itself"
    assert not any("RAY_AUTH" in c for c in config["initialization_commands"]), "those run on the host"
    (start,) = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
    assert not [c for c in config["worker_start_ray_commands"] if "dashboard-host" in c]


def test_runtime_env_holds_no_credentials():
    env_vars = yaml.safe_load((DEPLOY / "runtime_env.yaml").read_text()).get("env_vars", {})
    assert not [k for k in env_vars if re.search(r"TOKEN|SECRET|ACCESS_KEY|PASSWORD", k)]
