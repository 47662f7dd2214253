"""Least privilege on the synthesized templates: pods never reach the node role, every Pod Identity role trusts
only this cluster, the VPC CNI has its own identity, and the EC2 write statements are pinned to Multus subnets.

What a template cannot show: that EKS honours the add-on's pod identity association before aws-node starts on the
first node (the node group depends on both add-ons, which is all a template can order).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import resources

NODE_POLICIES_WITHOUT_SSM = {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}


def _managed_names(role: dict) -> set[str]:
    names = set()
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        # plain, Fn::Join or Fn::If (the kubectl provider's): the policy name ends the string naming it
        names.update(part.rsplit("/", 1)[-1] for part in _strings(arn) if ":policy/" in part)
    return names


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _all_resources(synthesized) -> dict[str, dict]:
    out = {}
    for stack, template in synthesized.templates.items():
        out.update({f"{stack}/{k}": v for k, v in template["Resources"].items()})
    return out


def test_every_launch_template_and_instance_has_imdsv2_and_hop_limit_1(synthesized):
    """Hop limit 2 let every pod off the host network fetch the node role's credentials (issue 10, item 1)."""
    found = 0
    for name, res in _all_resources(synthesized).items():
        if res["Type"] == "AWS::EC2::LaunchTemplate":
            options = res["Properties"]["LaunchTemplateData"].get("MetadataOptions", {})
        elif res["Type"] == "AWS::EC2::Instance":
            options = res["Properties"].get("MetadataOptions", {})
        else:
            continue
        found += 1
        assert options.get("HttpTokens") == "required", name
        assert options.get("HttpPutResponseHopLimit") == 1, name
    assert found >= 2  # the node group's launch template and the bastion


def test_node_role_has_no_cni_policy_and_no_ssm_by_default(synthesized):
    (role,) = [r for k, r in resources(synthesized.templates["eks-multus-workers"], "AWS::IAM::Role").items()
               if k.startswith("NodeGroupRole")]
    assert _managed_names(role) == NODE_POLICIES_WITHOUT_SSM
    assert "Policies" not in role["Properties"]


def test_node_ssm_adds_only_the_session_manager_policy(make_config, tmp_path):
    from tests.conftest import SynthesizedApp

    app = SynthesizedApp(make_config(nodeSsm="true", crossNodeTraffic="false", samplePods="false"), tmp_path)
    (role,) = [r for k, r in resources(app.templates["eks-multus-workers"], "AWS::IAM::Role").items()
               if k.startswith("NodeGroupRole")]
    assert _managed_names(role) == NODE_POLICIES_WITHOUT_SSM | {"AmazonSSMManagedInstanceCore"}


def test_vpc_cni_gets_its_own_pod_identity_role_with_the_cni_policy(synthesized):
    workers = synthesized.templates["eks-multus-workers"]
    addons = {r["Properties"]["AddonName"]: (k, r) for k, r in resources(workers, "AWS::EKS::Addon").items()}
    assert set(addons) == {"vpc-cni", "eks-pod-identity-agent"}  # one agent add-on, not two
    key, cni = addons["vpc-cni"]
    (association,) = cni["Properties"]["PodIdentityAssociations"]
    assert association["ServiceAccount"] == "aws-node"
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    assert _managed_names(workers["Resources"][role_id]) == {"AmazonEKS_CNI_Policy"}
    assert addons["eks-pod-identity-agent"][0] in cni["DependsOn"]
    # No other role in the app carries the CNI policy.
    holders = [k for k, r in _all_resources(synthesized).items()
               if r["Type"] == "AWS::IAM::Role" and "AmazonEKS_CNI_Policy" in _managed_names(r)]
    assert holders == [f"eks-multus-workers/{role_id}"]
    # Nodes start only after aws-node's identity exists.
    (group_id,) = [k for k in resources(workers, "AWS::AutoScaling::AutoScalingGroup")]
    assert {key, addons["eks-pod-identity-agent"][0]} <= set(workers["Resources"][group_id]["DependsOn"])


def test_every_pod_identity_role_trusts_only_this_cluster_in_this_account(synthesized):
    roles = {k: r for k, r in _all_resources(synthesized).items() if r["Type"] == "AWS::IAM::Role"
             and "pods.eks.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])}
    assert len(roles) == 2  # the VPC CNI and the pod-address controller
    for name, role in roles.items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        condition = statement["Condition"]["StringEquals"]
        assert condition["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, name
        assert "ClusterC2E21B66Arn" in json.dumps(condition["aws:SourceArn"]), name  # the cluster's ARN export


@pytest.mark.parametrize("sid", ["PodAddressesOnOwnMultusEnis"])
def test_controller_writes_are_pinned_to_the_multus_subnets(synthesized, sid):
    workers = synthesized.templates["eks-multus-workers"]
    statements = [s for p in resources(workers, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == sid]
    (statement,) = statements
    subnets = statement["Condition"]["ArnEquals"]["ec2:Subnet"]
    assert len(subnets) == 4  # 2 Multus networks x 2 AZs
    assert all("Multus" in json.dumps(s) for s in subnets)


def test_eni_lambda_network_interface_statements_are_pinned_to_the_multus_subnets(synthesized):
    workers = synthesized.templates["eks-multus-workers"]
    statements = {s["Sid"]: s for p in resources(workers, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if s.get("Sid") in {"CreateOwnedEni", "TagOnCreate", "ManageOwnedEni"}}
    assert set(statements) == {"CreateOwnedEni", "TagOnCreate", "ManageOwnedEni"}
    # Tag-on-create is pinned by ec2:CreateAction to the CreateNetworkInterface call, which is itself pinned to the
    # Multus subnets; it carries no ec2:Subnet condition of its own (see eni_attacher.py).
    # A new ENI (CreateOwnedEni, TagOnCreate) is pinned through the subnet resource of CreateNetworkInterface
    # (CreateEniInMultusSubnets), not through resource keys IAM may not fill for a resource that does not exist yet.
    tag_on_create, create = statements.pop("TagOnCreate"), statements.pop("CreateOwnedEni")
    assert tag_on_create["Condition"] == {"StringEquals": {"ec2:CreateAction": "CreateNetworkInterface"}}
    assert "ArnEquals" not in create["Condition"]
    ((_, subnets),) = [(s, s["Resource"]) for p in resources(workers, "AWS::IAM::Policy").values()
                       for s in p["Properties"]["PolicyDocument"]["Statement"]
                       if s.get("Sid") == "CreateEniInMultusSubnets"]
    assert len([r for r in subnets if ":subnet/" in json.dumps(r)]) == 4
    for sid, statement in statements.items():
        assert len(statement["Condition"]["ArnEquals"]["ec2:Subnet"]) == 4, sid


# ------------------------------------------------------------------------------------------ logs we own


def test_every_log_group_has_retention_our_key_and_is_deleted_with_its_stack(synthesized):
    groups = {k: r for k, r in _all_resources(synthesized).items() if r["Type"] == "AWS::Logs::LogGroup"}
    # control plane, flow logs, ENI Lambda, reservation Lambda, restrict-default-SG, kubectl provider functions
    assert len(groups) >= 5, sorted(groups)
    assert any("ControlPlane" in k for k in groups) and any("FlowLogs" in k for k in groups)
    for name, group in groups.items():
        props = group["Properties"]
        assert props["RetentionInDays"] == 30, name
        assert "LogsKey" in json.dumps(props["KmsKeyId"]), name
        assert group["DeletionPolicy"] == "Delete", name


def test_the_control_plane_log_group_exists_before_the_cluster(synthesized):
    cluster = synthesized.templates["eks-multus-cluster"]
    ((cluster_id, eks_cluster),) = resources(cluster, "AWS::EKS::Cluster").items()
    ((group_id, group),) = [(k, r) for k, r in resources(cluster, "AWS::Logs::LogGroup").items()
                            if "ControlPlane" in k]
    assert group["Properties"]["LogGroupName"] == f"/aws/eks/{eks_cluster['Properties']['Name']}/cluster"
    assert group_id in eks_cluster["DependsOn"]


def test_logs_key_rotates_is_scheduled_for_deletion_and_lets_only_this_accounts_log_groups_use_it(synthesized):
    cluster = synthesized.templates["eks-multus-cluster"]
    ((_, key),) = [(k, r) for k, r in resources(cluster, "AWS::KMS::Key").items() if k.startswith("LogsKey")]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Delete" and key["Properties"]["PendingWindowInDays"] == 7
    (logs,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
               if s.get("Sid") == "CloudWatchLogsOfThisAccountAndRegion"]
    assert logs["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}
    context = json.dumps(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert ":logs:us-west-2:" in context and "AWS::AccountId" in context and "log-group:*" in context


def _network_interface_condition_keys(action: str) -> set[str]:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":")
    rows = get_action_data(service, name)[service]
    return {key for row in rows if ":network-interface/" in row["resource_arn_format"] for key in row["condition_keys"]}


def test_every_ec2_subnet_condition_is_one_the_service_authorization_reference_lists(synthesized):
    """A condition key IAM does not evaluate for an action would make the statement never match (or, under a
    Deny, never apply): checked against policy_sentry's offline copy of the Service Authorization Reference."""
    checked = 0
    for name, res in _all_resources(synthesized).items():
        if res["Type"] != "AWS::IAM::Policy":
            continue
        for statement in res["Properties"]["PolicyDocument"]["Statement"]:
            if "ec2:Subnet" not in json.dumps(statement.get("Condition", {})):
                continue
            assert all(":network-interface/" in json.dumps(r) for r in (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]))
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                assert "ec2:Subnet" in _network_interface_condition_keys(action), (name, action)
                checked += 1
    assert checked == 6  # controller: assign, unassign; ENI Lambda: attach, detach, modify, delete
    assert "ec2:Subnet" not in _network_interface_condition_keys("ec2:DescribeNetworkInterfaces")  # can fail
