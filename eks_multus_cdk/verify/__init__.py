"""`make verify`: the walkthrough's checks against a deployed cluster, with the kubernetes Python client.

- `checks`: pure functions, API objects (dicts) and expectations in, `CheckResult` rows out;
- `expected`: what the cluster should hold, computed by `nads` and `sample_pods` from the config;
- `runner`: fetches objects through a `ClusterReader` and runs the checks in order;
- `kube`: the `ClusterReader` over the kubernetes client (kubeconfig, or EKS API + STS via `eks_auth`);
- `cli`: `python -m eks_multus_cdk.verify [--kubeconfig PATH] [--context NAME]
  [--cluster-name NAME [--region R]] [--config cdk.json]`.
"""
