"""Prometheus metrics of the controller (prometheus-client), in a registry of its own (tests make one each)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "multus_pod_address"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.assign_latency = Histogram(
            f"{PREFIX}_assignment_latency_seconds",
            "From the cache first seeing a pod's address (Multus network-status) to the address confirmed on its ENI",
            buckets=(0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 20, 30, 60, 120), registry=r,
        )
        self.ec2_calls = Counter(f"{PREFIX}_ec2_calls", "EC2 API calls by operation and outcome (ok or error code)",
                                 ["operation", "outcome"], registry=r)
        self.kube_requests = Counter(f"{PREFIX}_kube_requests", "Kubernetes API requests by verb and resource",
                                     ["verb", "resource"], registry=r)
        self.pass_duration = Histogram(
            f"{PREFIX}_pass_duration_seconds", "Duration of one reconcile pass",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r,
        )
        self.passes = Counter(f"{PREFIX}_passes", "Reconcile passes by trigger and outcome", ["trigger", "outcome"],
                              registry=r)
        self.cache_objects = Gauge(f"{PREFIX}_cache_objects", "Objects in the watch cache", ["cache"], registry=r)
        self.free_slots = Gauge(f"{PREFIX}_free_slots", "Published extended resource per network", ["resource"],
                                registry=r)
        self.refused = Gauge(f"{PREFIX}_refused_addresses", "Pod addresses not assigned because their ENI is full",
                             registry=r)
        self.cache_lists = Gauge(f"{PREFIX}_cache_lists", "LIST requests of the watch cache (1 on start, +1 per 410)",
                                 ["cache"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
