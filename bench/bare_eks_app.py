"""Baseline for `make bench`: a bare aws_eks_v2 cluster with the same kubectl layer and nothing else."""

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer


class BareStack(Stack):
    @property
    def availability_zones(self) -> list[str]:
        return ["us-west-2a", "us-west-2b"]


app = App()
stack = BareStack(app, "bare-eks", env=Environment(region="us-west-2"))
eks.Cluster(
    stack, "Cluster",
    version=eks.KubernetesVersion.V1_35,
    default_capacity=0,
    default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
    kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")),
)
app.synth()
