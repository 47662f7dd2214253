"""The ValidatingAdmissionPolicies, with their CEL run by a CEL library against the requests the API server sends.

cel-python (PyPI `cel-python`, a pure-Python CEL implementation) parses every expression and evaluates it here with
the variables a Kubernetes API server binds (`object`, `oldObject`, `request`, `variables`). What it does not do,
and a real API server does: type-check the expressions against the pods' OpenAPI schema, offer Kubernetes' CEL
extension libraries (none is used here) and the optional syntax `?.` (not used), and apply the policy's
matchConstraints/matchConditions (modelled below by `admits`). Kubernetes' CEL cost limits are not modelled.
"""

from __future__ import annotations

import copy
import json

import celpy
import pytest

from eks_multus_cdk.multus_manifests import multus_manifests
from eks_multus_cdk.pod_addresses import CONTROLLER_FILES, load_manifests

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
MULTUS = "system:serviceaccount:kube-system:multus"
CONTROLLER = "system:serviceaccount:kube-system:multus-pod-address-sync"
CONDITION = "eks-multus.io/addresses-assigned"
NODE_KEY = "authentication.kubernetes.io/node-name"


def _policy(objects, name):
    (policy,) = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == name]
    (binding,) = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"
                  and o["spec"]["policyName"] == name]
    return policy, binding


NETWORK_STATUS_POLICY = _policy(multus_manifests("us-west-2"), "multus-network-status-writer")
CONTROLLER_POLICY = _policy(load_manifests("pod-address-sync", CONTROLLER_FILES), "multus-pod-address-sync-status")


def _expressions(policy):
    spec = policy["spec"]
    yield from (v["expression"] for v in spec.get("variables", []))
    yield from (c["expression"] for c in spec.get("matchConditions", []))
    for v in spec["validations"]:
        yield v["expression"]
        if "messageExpression" in v:
            yield v["messageExpression"]


ENV = celpy.Environment()


def _run(expression: str, activation: dict):
    return ENV.program(ENV.compile(expression)).evaluate(activation)


def admits(policy, *, operation, resource, user, obj, old=None, extra=None) -> tuple[bool, list[str]]:
    """What the API server decides for one request: (allowed, messages). Out of scope requests are allowed."""
    spec = policy["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    if operation not in rule["operations"] or resource not in rule["resources"]:
        return True, []
    request = {"operation": operation, "userInfo": {"username": user, **({"extra": extra} if extra else {})}}
    activation = {"object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
                  "request": celpy.json_to_cel(request)}
    for condition in spec.get("matchConditions", []):
        if not _run(condition["expression"], activation):
            return True, []
    variables = {}
    for variable in [*spec.get("variables", []), None]:  # each variable sees the ones declared before it
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()})
        if variable is not None:
            variables[variable["name"]] = _run(variable["expression"], activation)
    messages = []
    for validation in spec["validations"]:
        result = _run(validation["expression"], activation)
        assert isinstance(result, celpy.celtypes.BoolType), (validation["expression"], result)
        if not result:
            messages.append(str(_run(validation["messageExpression"], activation)) if "messageExpression" in validation
                            else validation["message"])
    return not messages, messages


def pod(annotations=None, node="node-a", conditions=None, labels=None):
    return {"metadata": {"namespace": "team-a", "name": "web", **({"annotations": annotations} if annotations else {}),
                         **({"labels": labels} if labels else {})},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "hostIP": "10.0.2.10", "podIPs": [{"ip": "10.0.2.77"}],
                       **({"conditions": conditions} if conditions is not None else {})}}


FORGED = {NETWORK_STATUS: '[{"name": "multus-networks/multus1-us-west-2a", "ips": ["10.0.4.170"]}]'}
REAL = {NETWORK_STATUS: '[{"name": "multus-networks/multus1-us-west-2a", "ips": ["10.0.4.131"]}]'}


@pytest.mark.parametrize("policy", [NETWORK_STATUS_POLICY[0], CONTROLLER_POLICY[0]], ids=["network-status", "status"])
def test_every_expression_parses_as_cel(policy):
    for expression in _expressions(policy):
        ENV.compile(expression)  # raises CELParseError on a syntax error


def test_cel_library_rejects_broken_syntax():
    """The check above can fail: the library refuses what an API server would refuse to parse."""
    with pytest.raises(celpy.CELParseError):
        ENV.compile("variables.newValue == ")


def test_bindings_deny():
    for _, binding in (NETWORK_STATUS_POLICY, CONTROLLER_POLICY):
        assert binding["spec"]["validationActions"] == ["Deny"]
    for policy, _ in (NETWORK_STATUS_POLICY, CONTROLLER_POLICY):
        assert policy["spec"]["failurePolicy"] == "Fail"


@pytest.mark.parametrize(("operation", "resource", "user", "old", "new", "allowed"), [
    ("CREATE", "pods", "alice", None, pod(FORGED), False),  # a pod created with a forged status
    ("CREATE", "pods", "alice", None, pod({"team": "a"}), True),
    ("UPDATE", "pods", "alice", pod(REAL), pod(FORGED), False),  # owner rewrites it
    ("UPDATE", "pods", "alice", pod(), pod(FORGED), False),  # owner adds it before Multus ran
    ("UPDATE", "pods", "alice", pod(REAL), pod(), False),  # owner removes it
    ("UPDATE", "pods/status", "alice", pod(REAL), pod(FORGED), False),  # through the status subresource too
    ("UPDATE", "pods", "alice", pod(REAL), pod({**REAL, "team": "a"}), True),  # other annotations are free
    ("UPDATE", "pods/status", MULTUS, pod(), pod(REAL), True),  # Multus writes it
    ("UPDATE", "pods/status", MULTUS, pod(REAL), pod(FORGED), True),
    ("UPDATE", "pods/status", "system:node:node-a", pod(REAL), pod(REAL, conditions=[{"type": "Ready"}]), True),
    ("DELETE", "pods", "alice", pod(REAL), pod(REAL), True),  # out of scope
])
def test_only_multus_sets_or_changes_network_status(operation, resource, user, old, new, allowed):
    ok, messages = admits(NETWORK_STATUS_POLICY[0], operation=operation, resource=resource, user=user, obj=new,
                          old=old)
    assert ok is allowed
    if not allowed:
        assert messages == [f"only Multus ({MULTUS}) may set or change the annotation {NETWORK_STATUS}; "
                            f"{user} tried to"]


def _gate(status):
    return {"type": CONDITION, "status": status, "reason": "AddressesAssigned"}


READY = {"type": "Ready", "status": "False"}


@pytest.mark.parametrize(("user", "extra", "old", "new", "allowed", "why"), [
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY]), pod(conditions=[READY, _gate("True")]), True, ""),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY, _gate("False")]),
     pod(conditions=[READY, _gate("True")]), True, ""),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(), pod(conditions=[_gate("True")]), True, ""),
    (CONTROLLER, {NODE_KEY: ["node-b"]}, pod(conditions=[READY]), pod(conditions=[READY, _gate("True")]), False,
     "only update pods on its own node (token node: node-b)"),
    (CONTROLLER, None, pod(conditions=[READY]), pod(conditions=[READY, _gate("True")]), False,
     "only update pods on its own node (token node: none)"),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY]),
     pod(conditions=[{"type": "Ready", "status": "True"}, _gate("True")]), False, "only change the condition"),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY]), pod(REAL, conditions=[READY]), False,
     "labels or annotations"),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY]),
     pod(conditions=[READY], labels={"role": "db"}), False, "labels or annotations"),
    (CONTROLLER, {NODE_KEY: ["node-a"]}, pod(conditions=[READY]),
     {**pod(conditions=[READY]), "status": {**pod(conditions=[READY])["status"], "phase": "Failed"}}, False,
     "phase or addresses"),
    ("system:node:node-b", None, pod(conditions=[READY]), pod(conditions=[{"type": "Ready", "status": "True"}]),
     True, ""),  # anyone else: not this policy's business
])
def test_controller_status_writes_are_held_to_its_node_and_its_condition(user, extra, old, new, allowed, why):
    ok, messages = admits(CONTROLLER_POLICY[0], operation="UPDATE", resource="pods/status", user=user, obj=new,
                          old=old, extra=extra)
    assert ok is allowed, messages
    if why:
        assert any(why in m for m in messages), messages


def test_policies_pass_the_135_schema():
    import kubernetes_validate

    for pair in (NETWORK_STATUS_POLICY, CONTROLLER_POLICY):
        for obj in pair:
            assert kubernetes_validate.validate(copy.deepcopy(obj), "1.35", strict=True) == "1.35"
    assert json.dumps(CONTROLLER_POLICY[0]).count(NODE_KEY) == 1  # the key is named once, in a variable
