"""Fixtures for the ENI lifecycle Lambda: `lambda/` on sys.path, fake credentials, a moto world, a handler runner."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

from eni_moto_world import REGION, Patches, build_world  # noqa: E402


@pytest.fixture
def aws_credentials(monkeypatch):
    """Fake credentials and region, so nothing can reach a real account."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                        # moto loads ~1300 AMIs per region otherwise (0.1 s a test); the world needs none
                        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fast_retries(monkeypatch):
    """botocore's retry backoff and adaptive rate limiter sleep (up to seconds after a throttle): not in tests.

    The retry decisions themselves (which errors, how many attempts) stay botocore's own.
    """
    from botocore.retries import bucket, standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.setattr(bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)


@pytest.fixture(scope="session")
def boto_session():
    """One boto3 session for the whole run: clients made from it skip reloading the service models (~0.1 s)."""
    import boto3

    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture(scope="module")
def moto_module():
    """mock_aws started once per test module: starting it registers ~1300 URL patterns (~0.2 s).

    Module scope (not session) so it never outlives this folder's tests; each test resets the data (`clients`).
    """
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def clients(moto_module, aws_credentials, fast_retries, boto_session, monkeypatch):
    """EC2 and Auto Scaling clients built by the Lambda's own factory (adaptive retries), inside mock_aws."""
    from eni_attacher.adapter import Settings, make_clients
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    # Waiters poll at most 3 times, 10 ms apart (production: 1 s, 25 polls).
    monkeypatch.setenv("ENI_ATTACHER_WAITER_DELAY", "0.01")
    monkeypatch.setenv("ENI_ATTACHER_WAITER_MAX_ATTEMPTS", "3")
    with mock_aws():  # nested inside the module's mock: it does not reset, so start from empty backends here
        BackendDict.reset()
        yield make_clients(Settings.from_env(os.environ), region=REGION, session=boto_session)
        BackendDict.reset()


@pytest.fixture
def world(clients, monkeypatch):
    """The moto world (VPC, subnets, ASG with hooks, lifecycle recorder, fault injector) and the Lambda's env."""
    patches = Patches()
    try:
        w = build_world(clients.ec2, clients.autoscaling, patches)
        for key, value in w.env().items():
            monkeypatch.setenv(key, value)
        yield w
    finally:
        patches.undo()


class LineCatcher(logging.Handler):
    """Collects the messages of the `eni_attacher` logger (which writes to stdout and does not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Runner:
    """Calls the real handler with the world's clients and simulated clock; returns the one JSON line it logged.

    `raises=True` expects the handler to raise after logging (a failed CompleteLifecycleAction or sweep).
    """

    def __init__(self, clients, catcher: LineCatcher, world=None) -> None:
        self.clients = clients
        self.catcher = catcher
        self.world = world

    def __call__(self, event, *, raises: bool = False) -> dict:
        from eni_attacher.handler import CompletionFailed, SweepFailed, handler

        self.catcher.lines.clear()
        clock = self.world.clock if self.world is not None else None
        if raises:
            with pytest.raises((CompletionFailed, SweepFailed)):
                handler(event, None, clients=self.clients, clock=clock)
            returned = None
        else:
            returned = handler(event, None, clients=self.clients, clock=clock)
        lines = list(self.catcher.lines)
        assert len(lines) == 1, f"expected exactly one log line, got {lines}"
        logged = json.loads(lines[0])
        if returned is not None:
            assert logged == json.loads(json.dumps(returned, default=str))
        return logged


@pytest.fixture
def catcher():
    handler_ = LineCatcher()
    log = logging.getLogger("eni_attacher")
    log.addHandler(handler_)
    yield handler_
    log.removeHandler(handler_)


@pytest.fixture
def run(clients, catcher, request):
    world = request.getfixturevalue("world") if "world" in request.fixturenames else None
    return Runner(clients, catcher, world)


# ------------------------------------------------------------------------------------------ IAM, call by call

PLACEHOLDER_SG = "sg-0placeholder000000"


def _placeholder_subnet(net: str, az: str) -> str:
    return f"subnet-0{net}{az.replace('-', '')}"


@pytest.fixture(scope="session")
def eni_policy_statements() -> list[dict]:
    """The ENI function's role policy as EniAttacher synthesizes it, for the world's group and networks.

    Subnet and security-group ids are placeholders (moto's ids change per test); `iam_audit` maps them to the
    world's ids. The statements are built by the same `_grant` code the app's template uses.
    """
    from aws_cdk import App, Environment, Stack
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template
    from eni_moto_world import ASG_NAME, AZS, LAUNCH_HOOK, NETWORKS, TERMINATE_HOOK

    from eks_multus_cdk.config import parse_config
    from eks_multus_cdk.eni_attacher import EniAttacher

    app = App()
    stack = Stack(app, "IamProbe", env=Environment(account="123456789012", region=REGION))
    networks = parse_config({}).multus_networks
    assert tuple(n.name for n in networks) == NETWORKS
    subnets = [[ec2.Subnet.from_subnet_attributes(stack, f"S{n}{i}", subnet_id=_placeholder_subnet(net, az),
                                                  availability_zone=az) for i, az in enumerate(AZS)]
               for n, net in enumerate(NETWORKS)]
    sg = ec2.SecurityGroup.from_security_group_id(stack, "Sg", PLACEHOLDER_SG)
    EniAttacher(stack, "EniAttacher", asg_name=ASG_NAME, networks=networks, multus_subnets=subnets,
                security_group=sg, log_retention=logs.RetentionDays.ONE_MONTH, launch_hook_name=LAUNCH_HOOK,
                terminate_hook_name=TERMINATE_HOOK)
    template = Template.from_stack(stack).to_json()
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    from iam_eval import resolve

    return resolve(policy["Properties"]["PolicyDocument"]["Statement"], {})


def _world_statements(statements: list[dict], world) -> list[dict]:
    from eni_moto_world import AZS, NETWORKS

    text = json.dumps(statements)
    for net in NETWORKS:
        for az in AZS:
            text = text.replace(_placeholder_subnet(net, az), world.multus_subnets[net][az])
    return json.loads(text.replace(PLACEHOLDER_SG, world.security_group_id))


@pytest.fixture(autouse=True)
def iam_audit(request, monkeypatch):
    """Every test with a moto world: each AWS call the handler makes is evaluated against the synthesized policy
    (tests/lambda/iam_eval.py) and refused as AWS would refuse it; the test fails if any call was denied."""
    if "world" not in request.fixturenames:
        yield None
        return
    from eni_attacher import handler as handler_module
    from iam_eval import IamAudit

    world = request.getfixturevalue("world")
    audit = IamAudit(_world_statements(request.getfixturevalue("eni_policy_statements"), world))
    audit.attach(world.ec2, world.autoscaling)
    real = handler_module.handler

    def audited(*args, **kwargs):
        audit.enter()
        try:
            return real(*args, **kwargs)
        finally:
            audit.leave()

    monkeypatch.setattr(handler_module, "handler", audited)
    world.iam = audit
    yield audit
    expected = getattr(world, "expected_denials", 0)
    assert len(audit.denied) == expected, f"calls the synthesized policy denies: {audit.denied}"
