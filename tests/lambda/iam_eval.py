"""A small IAM policy evaluator for the ENI Lambda's role, fed with every AWS call the Lambda makes under moto.

moto evaluates no IAM, so a missing permission (which on AWS would ABANDON every launch) cannot show in a moto
test by itself. `IamAudit` closes that gap: a botocore `before-call` hook on the Lambda's clients turns each call
into the request IAM would see and evaluates the synthesized role policy for it; a denied call fails exactly as
AWS fails it (`UnauthorizedOperation` / `AccessDenied`), and is recorded.

What a request involves comes from the Service Authorization Reference as policy_sentry ships it offline: the
resource types (and their ARN formats) and the condition keys each action supports. Which of an action's resource
types a particular request touches is modelled per operation in `_resources` (for example
ModifyNetworkInterfaceAttribute involves the attachment's instance when the ENI is attached); every resource type
the reference lists for an action we call must be modelled or named in `NOT_INVOLVED` with the reason, so a new
entry in the reference fails the test instead of being ignored.

Evaluation: explicit Deny wins, then any Allow, else implicit deny. Action and Resource support `*` and `?`
wildcards. Conditions: only the operators our template uses (`StringEquals`, `StringLike`, `ArnEquals`,
`ArnLike`); any other operator,
`NotAction`, `NotResource` or a condition-set prefix raises `Unsupported`, failing the test rather than guessing.
A condition key absent from the request context makes its condition false, as in IAM.

Not modelled (stated, not hidden): SCPs, permission boundaries, session policies and resource policies (none
apply to this role); `aws:` global keys other than RequestTag/ResourceTag/TagKeys; IAM's case rules for tag keys
(ours are lower case).
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-west-2"

# Resource types the reference lists for an action that none of our requests involve, with the reason.
NOT_INVOLVED = {
    ("ec2:ModifyNetworkInterfaceAttribute", "security-group"): "only when the request changes Groups; ours never do",
    ("ec2:ModifyNetworkInterfaceAttribute", "subnet"): "only for changes that concern the subnet (public address "
    "association); ours change SourceDestCheck and the attachment's DeleteOnTermination",
}


class Unsupported(AssertionError):
    """The policy uses something this evaluator does not implement: fail, never guess."""


# ------------------------------------------------------------------------------------------ the reference


@cache
def reference(action: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """resource type -> (ARN format, condition keys) for `service:Action`; "*" for the resource-less entry."""
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":")
    rows = get_action_data(service, name)[service]
    if not rows:
        raise AssertionError(f"{action} is not in the Service Authorization Reference")
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for row in rows:
        fmt = row["resource_arn_format"]
        rtype = "*" if fmt == "*" else re.split(r"[:/]", fmt.split(":", 5)[5])[0]
        out[rtype] = (fmt, tuple(row["condition_keys"]))
    return out


def arn_of(action: str, rtype: str, ident: str) -> str:
    fmt, _ = reference(action)[rtype]
    arn = fmt.replace("${Partition}", "aws").replace("${Region}", REGION).replace("${Account}", ACCOUNT)
    return re.sub(r"\$\{[A-Za-z]+\}", ident, arn, count=1)


# ------------------------------------------------------------------------------------------ evaluation


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, value: str, *, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


OPERATORS = {
    "StringEquals": lambda want, have: have in want,
    "StringLike": lambda want, have: any(_wild(w, have, case=True) for w in want),
    # IAM treats ArnEquals and ArnLike alike: each of the six ARN parts compared, wildcards allowed.
    "ArnEquals": lambda want, have: any(_wild(w, have, case=True) for w in want),
    "ArnLike": lambda want, have: any(_wild(w, have, case=True) for w in want),
}


def _condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    for operator, keys in condition.items():
        if ":" in operator or operator.endswith("IfExists") or operator not in OPERATORS:
            raise Unsupported(f"condition operator {operator!r} is not implemented by the test's evaluator")
        for key, wanted in keys.items():
            have = context.get(key)
            if have is None or isinstance(have, list):
                return False  # absent single-valued key; multi-valued keys need a set operator
            if not OPERATORS[operator]([str(w) for w in _listify(wanted)], str(have)):
                return False
    return True


def _statement_matches(st: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    for unsupported in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if unsupported in st:
            raise Unsupported(f"{unsupported} in an identity policy statement is not implemented")
    if not any(_wild(a, action, case=False) for a in _listify(st["Action"])):
        return False
    if not any(_wild(r, resource, case=True) for r in _listify(st["Resource"])):
        return False
    return _condition_holds(st.get("Condition", {}), context)


def decide(statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, Any]) -> str:
    """'Allow', 'Deny' (explicit) or 'ImplicitDeny' for one action on one resource."""
    matched = [st["Effect"] for st in statements if _statement_matches(st, action, resource, context)]
    if "Deny" in matched:
        return "Deny"
    return "Allow" if "Allow" in matched else "ImplicitDeny"


# ------------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class Part:
    """One authorization check of a request: an action on one resource with its condition context."""

    action: str
    rtype: str
    resource: str
    context: dict[str, Any]


def _tags_context(prefixes: tuple[str, ...], tags: dict[str, str]) -> dict[str, Any]:
    return {f"{p}/{k}": v for p in prefixes for k, v in tags.items()}


class MotoState:
    """Reads resources from moto's backend directly (no API call, so nothing is recorded twice)."""

    def __init__(self) -> None:
        from moto.autoscaling.models import autoscaling_backends
        from moto.ec2.models import ec2_backends

        self.ec2 = ec2_backends[ACCOUNT][REGION]
        self.asg = autoscaling_backends[ACCOUNT][REGION]

    def tags(self, resource_id: str) -> dict[str, str]:
        return dict(self.ec2.tags.get(resource_id, {}))

    def eni(self, eni_id: str) -> Any:
        return self.ec2.enis.get(eni_id)

    def eni_by_attachment(self, attachment_id: str) -> Any:
        return next((e for e in self.ec2.enis.values() if e.attachment_id == attachment_id), None)


def requests_for(operation: str, params: dict[str, Any], state: MotoState) -> list[Part]:
    """The authorization checks IAM makes for one API call (see the module docstring)."""
    service = "autoscaling" if operation in ("CompleteLifecycleAction", "RecordLifecycleActionHeartbeat",
                                             "DescribeAutoScalingGroups") else "ec2"
    action = f"{service}:{operation}"
    ref = reference(action)
    parts: list[Part] = []

    def add(rtype: str, ident: str, tags: dict[str, str] | None, request_tags: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None, act: str = action) -> None:
        keys = reference(act)[rtype][1]
        ctx: dict[str, Any] = {}
        if tags is not None:
            ctx.update(_tags_context(tuple(p for p in ("ec2:ResourceTag", "aws:ResourceTag")
                                           if f"{p}/${{TagKey}}" in keys), tags))
        if request_tags is not None and "aws:RequestTag/${TagKey}" in keys:
            ctx.update(_tags_context(("aws:RequestTag",), request_tags))
            ctx["aws:TagKeys"] = sorted(request_tags)
        for key, value in (extra or {}).items():
            if key in keys:
                ctx[key] = value
        parts.append(Part(act, rtype, arn_of(act, rtype, ident), ctx))

    if set(ref) == {"*"}:  # Describe*: no resource-level permissions
        return [Part(action, "*", "*", {})]
    involved: set[str] = set()
    if operation == "CreateNetworkInterface":
        specs = [t for t in params.get("TagSpecifications", []) if t.get("ResourceType") == "network-interface"]
        request_tags = {t["Key"]: t["Value"] for s in specs for t in s.get("Tags", [])}
        # No resource keys (ec2:Subnet...) for the ENI being created: IAM's documentation does not say they are
        # filled for a resource that does not exist yet, so a policy must not depend on them.
        add("network-interface", "*", None, request_tags)
        add("subnet", params["SubnetId"], state.tags(params["SubnetId"]))
        for group in params.get("Groups", []):
            add("security-group", group, state.tags(group))
        involved |= {"network-interface", "subnet", "security-group"}
        if request_tags:  # tag-on-create is authorized as ec2:CreateTags with ec2:CreateAction
            add("network-interface", "*", None, request_tags, {"ec2:CreateAction": operation}, act="ec2:CreateTags")
    elif operation in ("ModifyNetworkInterfaceAttribute", "AttachNetworkInterface", "DeleteNetworkInterface",
                       "DetachNetworkInterface"):
        eni = (state.eni_by_attachment(params["AttachmentId"]) if operation == "DetachNetworkInterface"
               else state.eni(params["NetworkInterfaceId"]))
        eni_id = eni.id if eni is not None else params.get("NetworkInterfaceId", "unknown")
        subnet_extra = ({"ec2:Subnet": arn_of("ec2:CreateNetworkInterface", "subnet", eni.subnet.id)}
                        if eni is not None else {})
        add("network-interface", eni_id, state.tags(eni_id), extra=subnet_extra)
        involved.add("network-interface")
        instance_id = params.get("InstanceId") or (eni.instance.id if eni is not None and eni.instance else None)
        if instance_id and "instance" in ref and operation != "DeleteNetworkInterface":
            add("instance", instance_id, state.tags(instance_id))
        involved.add("instance")
        if operation == "ModifyNetworkInterfaceAttribute" and params.get("Groups"):
            raise AssertionError("the evaluator does not model Groups changes (NOT_INVOLVED says we never do)")
    elif service == "autoscaling":
        group = state.asg.autoscaling_groups[params["AutoScalingGroupName"]]
        group_id = group.arn.split(":autoScalingGroup:")[1].split(":")[0]
        add("autoScalingGroup", f"{group_id}:autoScalingGroupName/{group.name}", dict(
            (t["key"], t["value"]) for t in getattr(group, "tags", [])) if getattr(group, "tags", None) else {})
        parts[-1] = Part(action, "autoScalingGroup", group.arn, parts[-1].context)
        involved.add("autoScalingGroup")
    else:
        raise AssertionError(f"the evaluator has no request model for {operation}: add one")
    for rtype in ref:
        if rtype != "*" and rtype not in involved and (action, rtype) not in NOT_INVOLVED:
            raise AssertionError(f"the reference lists resource type {rtype!r} for {action}; model it in "
                                 "requests_for or name it in NOT_INVOLVED with the reason")
    return parts


# ------------------------------------------------------------------------------------------ the audit hook


class _Http:
    status_code = 403
    headers: dict[str, str] = {}


@dataclass
class IamAudit:
    """Evaluates every call made (on the clients it is attached to) while `active` is set on the calling thread."""

    statements: list[dict[str, Any]]
    enforce: bool = True
    evaluated: list[tuple[str, str, str, str]] = field(default_factory=list)  # (action, rtype, resource, decision)
    denied: list[str] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def active(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def enter(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def leave(self) -> None:
        self._local.depth -= 1

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._remember_params)
            client.meta.events.register("before-call.*.*", self._before_call)

    def _remember_params(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """`before-call` sees the serialized request; the API parameters are kept from this earlier event."""
        self._local.params = (model.name, dict(params))

    def _before_call(self, model: Any, **_: Any) -> Any:
        if not self.active:
            return None
        name, params = getattr(self._local, "params", (None, {}))
        assert name == model.name, f"parameters of {model.name} were not seen"
        state = MotoState()
        refused = []
        for part in requests_for(model.name, params, state):
            decision = decide(self.statements, part.action, part.resource, part.context)
            with self._lock:
                self.evaluated.append((part.action, part.rtype, part.resource, decision))
            if decision != "Allow":
                refused.append(f"{part.action} on {part.resource} ({decision}; context {part.context})")
        if not refused:
            return None
        with self._lock:
            self.denied.extend(refused)
        if not self.enforce:
            return None
        code = "AccessDenied" if model.service_model.service_name == "autoscaling" else "UnauthorizedOperation"
        return _Http(), {"Error": {"Code": code, "Message": f"not authorized: {refused[0]}"},
                         "ResponseMetadata": {"HTTPStatusCode": 403}}


# ------------------------------------------------------------------------------------------ the template


def resolve(node: Any, refs: dict[str, str]) -> Any:
    """Resolves the intrinsics of a synthesized policy document (Fn::Join, Ref, Fn::GetAtt)."""
    if isinstance(node, list):
        return [resolve(n, refs) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Fn::Join":
            return arg[0].join(str(resolve(p, refs)) for p in arg[1])
        if fn == "Ref":
            return {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                    "AWS::URLSuffix": "amazonaws.com"}.get(arg) or refs.get(arg, f"ref-{arg}")
        if fn == "Fn::GetAtt":
            return refs.get(".".join(arg), f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{arg[0]}")
    return {k: resolve(v, refs) for k, v in node.items()}
