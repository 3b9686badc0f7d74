"""The deploy manifests stay valid and agree on versions: offline, no cluster, no cloud."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RAYJOB_SCHEMA = ROOT / "tests" / "data" / "kuberay-1.7.0-rayjob-v1-schema.json"
RAYJOBS = ["rayjob.yaml", "rayjob-autoscaling.yaml"]


def closed(schema: dict) -> dict:
    """The schema with ``additionalProperties: false`` wherever it lists properties and says nothing else.

    The API server prunes unknown fields silently (or rejects them with strict field validation);
    a closed schema makes a typo such as ``minReplica`` fail here instead.

    Args:
        schema: an OpenAPI v3 schema, as in a CRD.
    """
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Kubernetes and a careful reader do not: refuse them."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {k for k in keys if keys.count(k) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicates}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(name: str) -> dict:
    return yaml.load((DEPLOY / name).read_text(), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


def test_a_key_written_twice_is_refused():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        yaml.load("kind: RayJob\nkind: RayCluster\n", Loader=UniqueKeyLoader)  # noqa: S506


@pytest.fixture(scope="module")
def rayjob_validator():
    schema = closed(json.loads(RAYJOB_SCHEMA.read_text()))
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("name", RAYJOBS)
def test_rayjob_matches_the_kuberay_crd(rayjob_validator, name):
    manifest = load(name)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in rayjob_validator.iter_errors(manifest)]
    assert not errors, "\n".join(errors)


def test_the_closed_schema_rejects_unknown_fields(rayjob_validator):
    manifest = load("rayjob.yaml")
    manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert not rayjob_validator.is_valid(manifest)


def test_rayjobs_give_up_and_fit_their_nodes():
    for name in RAYJOBS:
        spec = load(name)["spec"]
        assert spec.get("activeDeadlineSeconds", 0) > 0, f"{name}: without activeDeadlineSeconds it can wait forever"
        for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
            for container in group["template"]["spec"]["containers"]:
                requests = container["resources"]["requests"]
                # the largest node type the manifests name is an 8-vCPU, 32 GiB g5.2xlarge
                assert float(requests["cpu"]) < 8 and int(requests["memory"].removesuffix("Gi")) < 32, name


def test_autoscaling_rayjob_asks_for_its_max_replicas():
    spec = load("rayjob-autoscaling.yaml")["spec"]
    cluster = spec["rayClusterSpec"]
    (gpu,) = cluster["workerGroupSpecs"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert gpu["minReplicas"] == 0
    actors_max = int(re.search(r"--actors-max\s+(\d+)", spec["entrypoint"]).group(1))
    assert actors_max == gpu["maxReplicas"] > 0


def test_cluster_launcher_config_matches_the_installed_rays_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = load("cluster-aws.yaml")
    jsonschema.validate(config, schema)
    workers = config["available_node_types"]["ray.worker.gpu"]["node_config"]
    assert "IamInstanceProfile" in workers, "workers need an instance profile for S3 (deploy/README.md, c.1)"
    for node_type in config["available_node_types"].values():
        assert node_type["node_config"]["ImageId"].startswith("ami-"), "pin the NVIDIA driver AMI"


def versions() -> dict[str, str]:
    """Ray's version as each deploy file states it."""
    base = re.search(r"ARG BASE_IMAGE=rayproject/ray:([\d.]+)-", (DEPLOY / "Dockerfile").read_text()).group(1)
    found = {"Dockerfile base image": base}
    for name in RAYJOBS:
        found[f"{name} rayVersion"] = load(name)["spec"]["rayClusterSpec"]["rayVersion"]
    return found


def constraints() -> dict[str, str]:
    lines = (DEPLOY / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name.lower(): version for name, version in pins}


def test_ray_is_the_same_version_everywhere():
    found = versions() | {"constraints.txt": constraints()["ray"], "installed (tests)": ray.__version__}
    assert len(set(found.values())) == 1, found


def test_constraints_pin_every_runtime_dependency_inside_pyproject_ranges():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project itself runs on 3.10 too
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = constraints()
    for requirement in map(Requirement, deps):
        name = requirement.name.lower()
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt: run `make constraints`"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"
    for name in ("ray", "torch", "torchvision"):
        assert name in pins
