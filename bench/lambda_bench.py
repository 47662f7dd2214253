"""Figures of the ENI lifecycle Lambda under moto: API calls per event, handler wall time, a 50-instance burst.

Run: .venv/bin/python bench/lambda_bench.py   (exits 1 if a target is missed)

Targets: <= 2 reads per launch event, <= 4 EC2 writes per ENI, median handler time for 2 ENIs < 1 s,
50 simultaneous launch events -> exactly 100 ENIs, no duplicates, every instance complete and CONTINUEd;
an instance pending for 60 s (and 200 s, a metal type) -> CONTINUE within one 5 s poll of it running, in
simulated time (eni_moto_world.SimClock / PendingModel), with at most one DescribeInstances per 5 s of waiting.
API calls are counted with botocore `before-call` hooks: one count per API call (botocore retries not included).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambda"), str(ROOT / "tests" / "lambda")]

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-west-2", "AWS_REGION": "us-west-2", "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
})
for _name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)

from eni_attacher.adapter import Settings, make_clients  # noqa: E402
from eni_attacher.handler import handler  # noqa: E402
from eni_moto_world import AZS, NETWORKS, REGION, Patches, build_world  # noqa: E402
from moto import mock_aws  # noqa: E402

TIMING_RUNS = 9
logging.getLogger("eni_attacher").disabled = True  # the handler's one JSON line per event would drown the table
BURST = 50


class CallCounter:
    """Counts API calls per operation through botocore's before-call event (thread-safe)."""

    def __init__(self, *clients) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model, **_) -> None:
        with self._lock:
            self.calls[model.name] += 1

    def reset(self) -> Counter[str]:
        with self._lock:
            calls, self.calls = self.calls, Counter()
        return calls


def split(calls: Counter[str]) -> tuple[int, int, int]:
    reads = sum(n for op, n in calls.items() if op.startswith("Describe"))
    lifecycle = calls["CompleteLifecycleAction"] + calls["RecordLifecycleActionHeartbeat"]
    return reads, sum(calls.values()) - reads - lifecycle, lifecycle


def main() -> int:
    rows: list[tuple[str, str, str, bool]] = []
    with mock_aws():
        patches = Patches()
        try:
            clients = make_clients(Settings(), region=REGION)
            world = build_world(clients.ec2, clients.autoscaling, patches)
            os.environ.update(world.env())
            counter = CallCounter(clients.ec2, clients.autoscaling)
            n_enis = len(NETWORKS)

            # 1. API calls for one launch event, a duplicate delivery and a terminate
            instance_id = world.launch_instance(AZS[0])
            event = world.launch_event(instance_id)
            counter.reset()
            assert handler(event, None, clients=clients)["result"] == "CONTINUE"
            launch = counter.reset()
            reads, writes, lc = split(launch)
            rows.append(("launch: reads per event", str(reads), "<= 2", reads <= 2))
            rows.append(("launch: EC2 writes per ENI", f"{writes / n_enis:g}", "<= 4", writes / n_enis <= 4))
            rows.append(("launch: lifecycle calls", str(lc), "1", lc == 1))
            handler(event, None, clients=clients)
            reads, writes, lc = split(counter.reset())
            rows.append(("duplicate delivery: reads / writes", f"{reads} / {writes}", "<= 2 / 0",
                         reads <= 2 and writes == 0))
            handler(world.terminate_event(instance_id), None, clients=clients)
            reads, writes, lc = split(counter.reset())
            rows.append(("terminate: reads / EC2 writes per ENI", f"{reads} / {writes / n_enis:g}", "<= 2 / 0",
                         reads <= 2 and writes == 0))

            # 1b. pending instances, simulated time
            for pending in (60, 200):
                instance_id = world.launch_instance(AZS[0])
                world.pending.pending_for(instance_id, pending)
                start, describes_before = world.clock.time(), len(world.pending.describes)
                counter.reset()
                record = handler(world.launch_event(instance_id), None, clients=clients, clock=world.clock)
                took = world.clock.time() - start
                calls = counter.reset()
                describes = len(world.pending.describes) - describes_before
                ok = record["result"] == "CONTINUE" and took <= pending + 5 and describes <= took / 5 + 2
                rows.append((f"pending {pending} s: time to CONTINUE (simulated)", f"{took:.0f} s",
                             f"<= {pending + 5} s", ok))
                rows.append((f"pending {pending} s: DescribeInstances / heartbeats", f"{describes} / "
                             f"{calls['RecordLifecycleActionHeartbeat']}", "<= 1 per 5 s", ok))

            # 2. handler wall time for 2 ENIs (median of several fresh instances)
            times = []
            for i in range(TIMING_RUNS):
                event = world.launch_event(world.launch_instance(AZS[i % 2]))
                start = time.perf_counter()
                assert handler(event, None, clients=clients)["result"] == "CONTINUE"
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            rows.append((f"handler wall time, 2 ENIs (median of {TIMING_RUNS})", f"{median * 1000:.1f} ms", "< 1 s",
                         median < 1.0))
            counter.reset()

            # 3. burst: 50 simultaneous launch events for 50 instances
            instances = [world.launch_instance(AZS[i % 2]) for i in range(BURST)]
            events = [world.launch_event(i) for i in instances]
            counter.reset()
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=BURST) as pool:
                records = list(pool.map(lambda e: handler(e, None, clients=clients), events))
            burst_time = time.perf_counter() - start
            burst_calls = counter.reset()
            # one read of everything we own (moto's tag filters cost O(all tags) per ENI: no per-instance reads)
            enis = world.enis()
            tag = lambda eni, key: next((t["Value"] for t in eni["TagSet"] if t["Key"] == key), None)  # noqa: E731
            by_instance: dict[str, list[dict]] = {}
            for eni in enis:
                by_instance.setdefault(tag(eni, "eks-multus/instance-id"), []).append(eni)
            enis = [e for i in instances for e in by_instance.get(i, [])]
            pairs = {(tag(e, "eks-multus/instance-id"), tag(e, "eks-multus/network")) for e in enis}
            def has_its_enis(instance_id: str) -> bool:
                mine = by_instance.get(instance_id, [])
                attachments = [e.get("Attachment", {}) for e in mine]
                return (sorted(a.get("DeviceIndex", -1) for a in attachments) == list(range(1, n_enis + 1))
                        and all(a.get("DeleteOnTermination") for a in attachments)
                        and not any(e["SourceDestCheck"] for e in mine))

            complete = all(has_its_enis(i) for i in instances)
            continued = all(r["result"] == "CONTINUE" for r in records) and all(
                world.lifecycle.accepted(i) == ["CONTINUE"] for i in instances)
            expected = BURST * n_enis
            rows.append((f"burst of {BURST}: ENIs created", str(len(enis)), str(expected), len(enis) == expected))
            rows.append((f"burst of {BURST}: distinct (instance, network)", str(len(pairs)), str(expected),
                         len(pairs) == expected))
            rows.append((f"burst of {BURST}: all attached + CONTINUE", str(complete and continued), "True",
                         complete and continued))
            reads, writes, _ = split(burst_calls)
            rows.append((f"burst of {BURST}: wall time / reads / writes",
                         f"{burst_time:.2f} s / {reads} / {writes}", "-", True))
            rows.append(("orphan ENIs", str(len(world.orphans())), "0", not world.orphans()))
            detail = ", ".join(f"{op} {n}" for op, n in sorted(launch.items()))
        finally:
            patches.undo()

    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>24}  {'target':>12}  ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>24}  {target:>12}  {'yes' if ok else 'NO'}")
    print(f"calls of one launch event: {detail}")
    missed = [r[0] for r in rows if not r[3]]
    if missed:
        print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
