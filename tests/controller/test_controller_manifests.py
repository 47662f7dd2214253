"""whereabouts and pod-address-controller manifests, the controller image's build files, and the construct.

Every built-in object validates with kubernetes-validate in strict mode against Kubernetes 1.35 (the package
ships schemas 1.25 to 1.37; "1.35" selects 1.35.0). The construct is synthesized once per module in a small
app (aws_eks_v2 Cluster with the kubectl v35 layer); synth needs no Docker (the image asset builds at publish).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from controller_test_support import CONTROLLER_DIR
from kubernetes_validate.utils import all_versions

from eks_multus_cdk.config import parse_config
from eks_multus_cdk.pod_addresses import (
    CONTROLLER_FILES,
    SERVICE_ACCOUNT,
    WHEREABOUTS_FILES,
    WHEREABOUTS_IMAGE,
    PodAddressSync,
    image_platform,
    load_manifests,
    pod_ranges,
    render_controller,
    render_whereabouts,
    service_account_name,
)

KUBERNETES_VERSION = "1.35"
CONFIG = parse_config(None)


def controller_objects(**overrides: Any) -> list[dict[str, Any]]:
    kwargs = {"image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/x:abc", "pod_ranges": pod_ranges(CONFIG),
              "region": "us-west-2", "owner_prefix": CONFIG.stack_prefix, **overrides}
    return render_controller(load_manifests("pod-address-sync", CONTROLLER_FILES), **kwargs)


def whereabouts_objects() -> list[dict[str, Any]]:
    return render_whereabouts(load_manifests("whereabouts", WHEREABOUTS_FILES))


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def container(objects, name=None):
    (ds,) = by_kind(objects, "DaemonSet")
    containers = ds["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


# ------------------------------------------------------------------------------------------ schema


def test_kubernetes_validate_ships_1_35():
    assert "1.35.0" in all_versions()


ALL = [(f"whereabouts:{o['kind']}/{o['metadata']['name']}", o) for o in whereabouts_objects()] + [
    (f"controller:{o['kind']}/{o['metadata']['name']}", o) for o in controller_objects()
]


@pytest.mark.parametrize(("where", "obj"), ALL, ids=[w for w, _ in ALL])
def test_every_object_validates_strictly_against_kubernetes_1_35(where, obj):
    assert kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def test_the_validation_can_fail():
    bad = copy.deepcopy(controller_objects())
    container(bad)["env"][0]["valueFrom"]["fieldRef"]["fieldPth"] = "spec.nodeName"  # misspelt field
    (ds,) = by_kind(bad, "DaemonSet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------------------------------ whereabouts


def test_whereabouts_crds_are_the_two_the_cni_uses():
    crds = {o["metadata"]["name"]: o for o in by_kind(whereabouts_objects(), "CustomResourceDefinition")}
    assert set(crds) == {"ippools.whereabouts.cni.cncf.io", "overlappingrangeipreservations.whereabouts.cni.cncf.io"}
    for crd in crds.values():
        (version,) = crd["spec"]["versions"]
        assert (crd["spec"]["group"], version["name"], crd["spec"]["scope"]) == (
            "whereabouts.cni.cncf.io", "v1alpha1", "Namespaced")
    pool = crds["ippools.whereabouts.cni.cncf.io"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert pool["properties"]["spec"]["required"] == ["range", "allocations"]


def test_whereabouts_daemonset_installs_onto_the_node_and_runs_everywhere():
    objects = whereabouts_objects()
    (ds,) = by_kind(objects, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] and pod["tolerations"] == [{"operator": "Exists"}]
    c = pod["containers"][0]
    assert c["image"] == WHEREABOUTS_IMAGE and re.search(r":v\d+\.\d+\.\d+$", c["image"])
    script = c["args"][-1]
    assert script.index("/install-cni.sh") < script.index("/token-watcher.sh &") < script.index("/ip-control-loop")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert {p: paths[n] for p, n in mounts.items()} == {"/host/opt/cni/bin": "/opt/cni/bin",
                                                        "/host/etc/cni/net.d": "/etc/cni/net.d"}
    assert {e["name"] for e in c["env"]} == {"NODENAME", "WHEREABOUTS_NAMESPACE"}
    (account,) = by_kind(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_whereabouts_reconciler_is_one_replica_reading_the_cron_configmap():
    objects = whereabouts_objects()
    (deployment,) = by_kind(objects, "Deployment")
    (config_map,) = by_kind(objects, "ConfigMap")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["/ip-reconciler"]
    assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/cron-schedule"
    assert pod["volumes"][0]["configMap"]["items"] == [{"key": "cron-expression", "path": "config"}]
    assert len(config_map["data"]["cron-expression"].split()) == 5


def test_whereabouts_rbac_grants_no_wildcards_and_leases_only_in_its_namespace():
    objects = whereabouts_objects()
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    (cluster_role,) = by_kind(objects, "ClusterRole")
    assert not any("leases" in r["resources"] for r in cluster_role["rules"])
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "kube-system" and role["rules"][0]["resources"] == ["leases"]


def test_render_whereabouts_refuses_an_unpinned_image():
    objects = load_manifests("whereabouts", WHEREABOUTS_FILES)
    container(objects)["image"] = "ghcr.io/k8snetworkplumbingwg/whereabouts:latest"
    with pytest.raises(ValueError, match="not the pinned"):
        render_whereabouts(objects)


# ------------------------------------------------------------------------------------------ controller


def test_render_controller_sets_image_and_env():
    c = container(controller_objects(resync_seconds=30))
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert c["image"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/x:abc"
    assert json.loads(env["POD_RANGES"]) == ["10.0.4.128/25", "10.0.5.128/25", "10.0.6.128/25", "10.0.7.128/25"]
    assert (env["AWS_REGION"], env["ENI_OWNER_PREFIX"], env["IFNAME_PREFIX"], env["RESYNC_SECONDS"]) == (
        "us-west-2", "eks-multus", "multus", "30")
    assert env["NODE_NAME"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
    assert "set-by-renderer" not in json.dumps(controller_objects())


def test_rendered_env_is_what_the_controller_parses():
    from multus_ip_controller.main import Settings

    env = {e["name"]: e.get("value", "") for e in container(controller_objects())["env"]}
    settings = Settings.from_env({**env, "NODE_NAME": "n"})
    assert [str(r) for r in settings.pod_ranges] == pod_ranges(CONFIG)
    assert settings.owner_prefix == CONFIG.stack_prefix


def test_controller_daemonset_runs_on_every_node_on_the_host_network_as_non_root():
    (ds,) = by_kind(controller_objects(), "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    c = container(controller_objects())
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_controller_rbac_writes_only_status_subresources_and_events():
    objects = controller_objects()
    (role,) = by_kind(objects, "ClusterRole")
    assert kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION
    writes = [r for r in role["rules"] if set(r["verbs"]) - {"get", "list", "watch"}]
    # The readiness-gate condition and the extended resources, through status subresources only (never a pod's
    # or node's spec, labels or annotations), and events.
    assert writes == [{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
                      {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
                      {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    assert all("*" not in r["verbs"] + r["resources"] + r["apiGroups"] for r in role["rules"])
    (binding,) = by_kind(objects, "ClusterRoleBinding")
    (account,) = by_kind(objects, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert service_account_name(objects) == account["metadata"]["name"] == SERVICE_ACCOUNT


def test_probes_hit_the_health_server_the_controller_starts():
    from multus_ip_controller.main import Settings

    c = container(controller_objects())
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    settings = Settings.from_env({**env, "NODE_NAME": "n"})
    host, _, port = settings.health_address.rpartition(":")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"host": host, "path": path, "port": int(port)}
    assert c["ports"] == [{"name": "health", "containerPort": int(port), "protocol": "TCP"}]
    # The kubelet restarts it only after the controller itself reports no pass within LIVENESS_SECONDS, which
    # exceeds the resync period (a pass runs at least that often).
    assert settings.liveness_seconds > settings.resync_seconds
    assert (settings.debounce_seconds, settings.max_debounce_seconds) == (1.0, 3.0)


def test_memory_request_covers_the_measured_peak():
    """`make bench` measured a peak RSS of 112 MiB (README, Benchmark): the request must exceed it."""
    resources = container(controller_objects())["resources"]
    assert resources["requests"]["memory"] == "144Mi" and resources["limits"]["memory"] == "256Mi"


# ------------------------------------------------------------------------------------------ own-node policy


def _policy():
    (policy,) = by_kind(controller_objects(), "ValidatingAdmissionPolicy")
    (binding,) = by_kind(controller_objects(), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    return policy


def _admit(policy, user: str, node_name_claim: str | None, old: dict, new: dict) -> list[str]:
    """Evaluate the policy's CEL (cel-python) as the apiserver would: matchConditions, then every validation;
    returns the messages of the failed validations ([] = admitted)."""
    import celpy

    env = celpy.Environment()
    extra = {"authentication.kubernetes.io/node-name": [node_name_claim]} if node_name_claim else {}
    activation = {"request": celpy.json_to_cel({"userInfo": {"username": user, "extra": extra}}),
                  "object": celpy.json_to_cel(new), "oldObject": celpy.json_to_cel(old)}
    for condition in policy["spec"]["matchConditions"]:
        if not env.program(env.compile(condition["expression"])).evaluate(activation):
            return []  # not the controller: the policy does not apply
    return [v["message"] for v in policy["spec"]["validations"]
            if not env.program(env.compile(v["expression"])).evaluate(activation)]


CONTROLLER_USER = "system:serviceaccount:kube-system:multus-pod-address-sync"
NODE = {"metadata": {"name": "node-a"}, "status": {
    "capacity": {"cpu": "4", "pods": "58"}, "allocatable": {"cpu": "3920m", "pods": "58"},
    "conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.2.10"}],
    "nodeInfo": {"kubeletVersion": "v1.35.0"}}}


def _with(**status):
    node = copy.deepcopy(NODE)
    for key, value in status.items():
        node["status"][key] = value
    return node


def test_node_status_policy_admits_the_controller_publishing_on_its_own_node():
    policy = _policy()
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["nodes/status"]
    new = _with(capacity={**NODE["status"]["capacity"], "eks-multus.io/multus1-ips": "14"},
                allocatable={**NODE["status"]["allocatable"], "eks-multus.io/multus1-ips": "14"})
    assert _admit(policy, CONTROLLER_USER, "node-a", NODE, new) == []


@pytest.mark.parametrize(("claim", "change", "refusal"), [
    ("node-b", {"capacity": {"cpu": "4", "pods": "58", "eks-multus.io/multus1-ips": "14"}}, "node it runs on"),
    (None, {"capacity": {"cpu": "4", "pods": "58", "eks-multus.io/multus1-ips": "14"}}, "node it runs on"),
    ("node-a", {"capacity": {"cpu": "4", "pods": "110"}}, "extended resources"),
    ("node-a", {"allocatable": {"cpu": "3920m"}}, "extended resources"),
    ("node-a", {"conditions": [{"type": "Ready", "status": "False"}]}, "conditions"),
])
def test_node_status_policy_refuses_other_nodes_and_other_fields(claim, change, refusal):
    (message,) = _admit(_policy(), CONTROLLER_USER, claim, NODE, _with(**change))
    assert refusal in message


def test_node_status_policy_leaves_other_users_alone():
    assert _admit(_policy(), "system:node:node-a", "node-a", NODE, _with(capacity={"cpu": "8"})) == []


@pytest.mark.parametrize("missing", ["POD_RANGES", "ENI_OWNER_PREFIX"])
def test_render_controller_refuses_a_manifest_without_an_env_variable(missing):
    objects = load_manifests("pod-address-sync", CONTROLLER_FILES)
    c = container(objects)
    c["env"] = [e for e in c["env"] if e["name"] != missing]
    with pytest.raises(ValueError, match=missing):
        render_controller(objects, image="i", pod_ranges=["10.0.4.128/25"], region="r", owner_prefix="p")


def test_image_platform_follows_the_node_groups():
    from aws_cdk import aws_ecr_assets as ecr_assets

    assert image_platform(CONFIG).platform == ecr_assets.Platform.LINUX_AMD64.platform == "linux/amd64"
    graviton = parse_config(None, {"nodeGroups.0.instanceType": "m7g.large", "nodeGroups.0.maxNetworkInterfaces": 3})
    assert image_platform(graviton).platform == "linux/arm64"
    mixed = dataclasses.replace(graviton, node_groups=graviton.node_groups + CONFIG.node_groups[:1])
    with pytest.raises(ValueError, match="mix Graviton"):
        image_platform(mixed)


def test_dockerfile_pins_the_base_image_runs_non_root_and_starts_the_controller():
    dockerfile = (CONTROLLER_DIR / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.13\.\d+-slim(-\w+)?", base)
    (user,) = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert not user.startswith(("0", "root"))
    assert 'ENTRYPOINT ["python", "-m", "multus_ip_controller.main"]' in dockerfile


def test_requirements_are_pinned_to_the_versions_the_tests_ran_with():
    lines = [ln for ln in (CONTROLLER_DIR / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    pins = dict(ln.split("==") for ln in lines)
    assert set(pins) == {"boto3", "kubernetes", "prometheus-client"}
    assert all(importlib.metadata.version(name) == version for name, version in pins.items())


# ------------------------------------------------------------------------------------------ construct


def _build(config):
    from aws_cdk import App, Stack
    from aws_cdk import aws_eks_v2 as eks
    from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

    app = App()
    stack = Stack(app, "PodAddressTest")
    cluster = eks.Cluster(
        stack, "Cluster", version=eks.KubernetesVersion.of(config.kubernetes_version),
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP, default_capacity=0,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")),
    )
    sync = PodAddressSync(stack, "PodAddresses", cluster=cluster, config=config)
    assembly = app.synth()
    return sync, assembly.get_stack_by_name("PodAddressTest")


@pytest.fixture(scope="module")
def synthesized():
    sync, artifact = _build(CONFIG)
    return sync, artifact.template, artifact


def docker_assets(artifact) -> dict[str, dict[str, Any]]:
    """Asset hash -> source, from the stack's asset manifest (the default synthesizer writes one per stack)."""
    manifest = json.loads((Path(artifact.assembly.directory) / f"{artifact.stack_name}.assets.json").read_text())
    return {h: a["source"] for h, a in manifest.get("dockerImages", {}).items()}


def typed(template, cfn_type):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == cfn_type}


def manifest_objects(resource) -> list[dict[str, Any]]:
    """The objects of a kubectl manifest resource; CloudFormation tokens become `<token>`."""
    manifest = resource["Properties"]["Manifest"]
    if isinstance(manifest, dict):
        manifest = "".join(p if isinstance(p, str) else "<token>" for p in manifest["Fn::Join"][1])
    return json.loads(manifest)


def test_construct_exposes_its_parts(synthesized):
    sync, _, _ = synthesized
    assert sync.role is not None and sync.image is not None and sync.manifest is not None
    assert sync.whereabouts_manifest is not None and sync.addon is not None


def test_iam_policy_is_least_privilege(synthesized):
    _, template, _ = synthesized
    (policy,) = [r for k, r in typed(template, "AWS::IAM::Policy").items() if k.startswith("PodAddresses")]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert not any("*" in a for a in actions)
        if all(a.startswith("ec2:Describe") for a in actions):
            continue
        assert set(actions) == {"ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
        assert st["Resource"] != "*" and ":network-interface/*" in json.dumps(st["Resource"])
        assert st["Condition"] == {"StringEquals": {"ec2:ResourceTag/eks-multus/owner": [
            f"{CONFIG.stack_prefix}-{g.name}" for g in CONFIG.node_groups]}}
    assert {a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])} \
        == {"ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
            "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}


def test_role_is_trusted_by_eks_pod_identity_only(synthesized):
    _, template, _ = synthesized
    (role,) = [r for k, r in typed(template, "AWS::IAM::Role").items() if k.startswith("PodAddresses")]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]


def test_pod_identity_association_names_the_service_account_the_daemonset_runs_as(synthesized):
    _, template, _ = synthesized
    (association,) = typed(template, "AWS::EKS::PodIdentityAssociation").values()
    (addon,) = typed(template, "AWS::EKS::Addon").values()
    assert addon["Properties"]["AddonName"] == "eks-pod-identity-agent"
    resources = {k: r for k, r in typed(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
                 if k.startswith("PodAddressesController")}
    ((manifest_id, manifest),) = resources.items()
    objects = manifest_objects(manifest)
    (account,) = by_kind(objects, "ServiceAccount")
    assert association["Properties"]["ServiceAccount"] == service_account_name(objects) == account["metadata"]["name"]
    assert association["Properties"]["Namespace"] == account["metadata"]["namespace"] == "kube-system"
    association_id = next(iter(typed(template, "AWS::EKS::PodIdentityAssociation")))
    assert association_id in manifest["DependsOn"]  # credentials are injected at pod admission


def test_controller_manifest_carries_the_image_asset_and_the_pod_ranges(synthesized):
    _, template, artifact = synthesized
    (manifest,) = [r for k, r in typed(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
                   if k.startswith("PodAddressesController")]
    image_part = [p for p in manifest["Properties"]["Manifest"]["Fn::Join"][1] if isinstance(p, dict)][0]
    (asset_hash,) = docker_assets(artifact)
    assert asset_hash in json.dumps(image_part) and ".dkr.ecr." in json.dumps(image_part)
    env = {e["name"]: e.get("value") for e in container(manifest_objects(manifest))["env"]}
    assert json.loads(env["POD_RANGES"]) == pod_ranges(CONFIG)


def test_image_asset_builds_from_the_controller_folder_for_amd64(synthesized):
    _, _, artifact = synthesized
    ((_, source),) = docker_assets(artifact).items()
    staged = Path(artifact.assembly.directory) / source["directory"]
    assert sorted(p.name for p in staged.iterdir()) == [
        ".dockerignore", "Dockerfile", "multus_ip_controller", "requirements.txt"]
    assert not list(staged.rglob("__pycache__"))
    assert source["platform"] == "linux/amd64"


def test_whereabouts_manifest_holds_the_crds_first(synthesized):
    _, template, _ = synthesized
    (manifest,) = [r for k, r in typed(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
                   if k.startswith("PodAddressesWhereabouts")]
    kinds = [o["kind"] for o in manifest_objects(manifest)]
    assert kinds[:2] == ["CustomResourceDefinition", "CustomResourceDefinition"]
    assert {"DaemonSet", "Deployment", "ServiceAccount", "ClusterRole"} <= set(kinds)


def test_construct_ids_do_not_depend_on_config(synthesized):
    _, template, _ = synthesized
    other = parse_config(None, {"stackPrefix": "other", "multusNetworks.0.name": "renamed",
                                "nodeGroups.0.name": "workers"})
    _, artifact = _build(other)
    assert sorted(template["Resources"]) == sorted(artifact.template["Resources"])


def test_construct_refuses_host_local_configs():
    from aws_cdk import App, Stack

    with pytest.raises(ValueError, match="crossNodeTraffic"):
        PodAddressSync(Stack(App(), "S"), "P", cluster=None,
                       config=dataclasses.replace(CONFIG, cross_node_traffic=False))


def test_cdk_nag_finds_nothing_unacknowledged_in_the_construct(tmp_path):
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_eks_v2 as eks
    from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
    from cdk_nag import AwsSolutionsChecks

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "PodAddressNag")
    cluster = eks.Cluster(
        stack, "Cluster", version=eks.KubernetesVersion.of(CONFIG.kubernetes_version),
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP, default_capacity=0,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")),
    )
    PodAddressSync(stack, "PodAddresses", cluster=cluster, config=CONFIG)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except Exception as err:  # noqa: BLE001 - findings outside the construct fail the synth; filter below
        assert "alidation" in str(err)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    ours = [v["ruleName"] for p in report["pluginReports"] for v in p["violations"]
            if any("/PodAddresses/" in (c.get("constructPath") or "") for c in v.get("violatingConstructs", []))]
    assert ours == []
