"""Entry point and reconcile loop of the Multus pod-address controller (one per node).

Each reconcile reads the complete current state (the node's pods, the instance's Multus ENIs), plans with the
pure `planning.plan`, applies the plan ENI by ENI and logs one JSON line saying what it did. It runs on start,
every RESYNC_SECONDS, and shortly (debounced) after each pod watch event that changes a pod's addresses. After
each pass it sets the readiness-gate condition (`readiness.ADDRESSES_READY_CONDITION`) of the pods that opt in.

Environment: NODE_NAME (downward API), POD_RANGES (JSON list of CIDRs), AWS_REGION, RESYNC_SECONDS (default 60),
DEBOUNCE_SECONDS (default 2), ENI_OWNER_PREFIX (the stack prefix; only ENIs tagged eks-multus/owner=<prefix>-*
are touched), IFNAME_PREFIX (default "multus": the node names the ENI at device index N `<prefix>N`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multus_ip_controller import claims, credentials, kube, planning, readiness, startup_taint
from multus_ip_controller import ec2 as ec2_mod

log = logging.getLogger("multus_ip_controller")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    node_name: str
    pod_ranges: tuple[planning.IPv4Network, ...]
    region: str
    resync_seconds: float = 60.0
    debounce_seconds: float = 2.0
    owner_prefix: str | None = None
    ifname_prefix: str = "multus"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is required")
            return value

        def number(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a number") from None
            if value <= 0:
                raise SettingsError(f"{name}={raw!r} must be positive")
            return value

        raw_ranges = need("POD_RANGES")
        try:
            ranges = json.loads(raw_ranges)
            if not isinstance(ranges, list) or not ranges:
                raise ValueError("expected a non-empty JSON list")
            pod_ranges = planning.parse_ranges(ranges)
        except (ValueError, TypeError) as err:
            raise SettingsError(f"POD_RANGES={raw_ranges!r}: {err}") from None
        return cls(
            node_name=need("NODE_NAME"),
            pod_ranges=pod_ranges,
            region=env.get("AWS_REGION", "").strip() or need("AWS_DEFAULT_REGION"),
            resync_seconds=number("RESYNC_SECONDS", 60.0),
            debounce_seconds=number("DEBOUNCE_SECONDS", 2.0),
            owner_prefix=env.get("ENI_OWNER_PREFIX", "").strip() or None,
            ifname_prefix=env.get("IFNAME_PREFIX", "").strip() or "multus",
        )


class Controller:
    """Keeps EC2's secondary addresses on one instance's Multus ENIs equal to the pod addresses on its node."""

    def __init__(
        self,
        *,
        ec2: ec2_mod.Ec2Adapter,
        instance_id: str,
        node_name: str,
        pod_ranges: Sequence[planning.IPv4Network],
        list_pods: Callable[[], list[dict[str, Any]]],
        master_device_index: Callable[[str], int | None] | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
        patch_pod_condition: Callable[[str, str, dict[str, Any]], None] | None = None,
        clock: Callable[[], str] | None = None,
        vet_claims: Callable[[list, list], tuple[list, list]] | None = None,
    ) -> None:
        self.ec2 = ec2
        self.instance_id = instance_id
        self.node_name = node_name
        self.pod_ranges = tuple(pod_ranges)
        self.list_pods = list_pods
        self.master_device_index = master_device_index
        self.emit = emit or (lambda report: log.info(json.dumps(report, sort_keys=True)))
        # None: readiness gates are not served (the tests of the EC2 side alone).
        self.patch_pod_condition = patch_pod_condition
        self.clock = clock or (lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        # Claims checked against the IPAM record and EC2 (claims.ClaimChecker.vet); None only in EC2-side tests.
        self.vet_claims = vet_claims

    def reconcile(self, trigger: str = "resync") -> dict[str, Any]:
        """One full pass. Never raises for API errors: they are reported and the next pass retries."""
        started = time.monotonic()
        report: dict[str, Any] = {
            "msg": "reconcile",
            "node": self.node_name,
            "instanceId": self.instance_id,
            "trigger": trigger,
            "assigned": {},
            "unassigned": {},
            "errors": [],
        }
        try:
            pods = self.list_pods()
            desired, problems = kube.desired_addresses(pods, self.pod_ranges, self.master_device_index)
            enis = self.ec2.multus_enis(self.instance_id)
            accepted, refused = self.vet_claims(desired, enis) if self.vet_claims else (desired, [])
        except Exception as err:  # noqa: BLE001 - read failures end this pass; the loop retries with backoff
            report["errors"].append({"op": "read", "code": ec2_mod.error_code(err), "message": str(err)[:300]})
            return self._finish(report, started)

        result = planning.plan(accepted, enis, self.pod_ranges)
        report["refused"] = [{"pod": r.pod, "ip": r.ip, "reason": r.reason} for r in refused]
        report.update(
            pods=len(pods),
            enis=len(enis),
            desired=len({a.ip for a in desired}),
            inPlace=result.in_place,
            skipped=[{"pod": s.pod, "ip": s.ip, "reason": s.reason} for s in result.skipped],
            byDeviceIndex=list(result.by_device_index),
            problems=problems,
        )
        # Unassign first: it frees room on ENIs near their per-interface address limit.
        self._apply("unassign", self.ec2.unassign, result.unassign, report)
        self._apply("assign", self.ec2.assign, result.assign, report)
        self._gate_readiness(pods, desired, enis, report)
        return self._finish(report, started)

    def _gate_readiness(
        self,
        pods: list[dict[str, Any]],
        desired: list[planning.PodAddress],
        enis: list[planning.Eni],
        report: dict[str, Any],
    ) -> None:
        """Set the readiness-gate condition of every gated pod whose condition changed; one failure stops nothing."""
        if self.patch_pod_condition is None:
            return
        after = readiness.enis_after(enis, report["assigned"], report["unassigned"])
        decided = readiness.decide(pods, desired, after, self.pod_ranges)
        patched: dict[str, str] = {}
        for namespace, name, condition in readiness.changes(pods, decided, self.clock()):
            key = f"{namespace}/{name}"
            try:
                self.patch_pod_condition(namespace, name, condition)
                patched[key] = f"{condition['status']}/{condition['reason']}"
            except Exception as err:  # noqa: BLE001 - one pod's failure must not stop the others
                if getattr(err, "status", None) == 404:
                    continue  # deleted since the list: nothing to gate
                report["errors"].append({"op": "readiness", "pod": key, "code": kube.api_error_code(err),
                                         "message": str(err)[:300]})
        report["readiness"] = {
            "gated": len(decided),
            "notReady": sorted(k for k, c in decided.items() if not c.ready),
            "patched": patched,
        }

    def _apply(
        self,
        op: str,
        call: Callable[[str, Sequence[str]], None],
        batches: Mapping[str, Sequence[str]],
        report: dict[str, Any],
    ) -> None:
        done = report["assigned" if op == "assign" else "unassigned"]

        def failed(eni_id: str, ips: Sequence[str], err: Exception) -> None:
            error = {"op": op, "eni": eni_id, "ips": list(ips), "code": ec2_mod.error_code(err)}
            report["errors"].append({**error, "message": str(err)[:300]})

        for eni_id, ips in batches.items():
            try:
                call(eni_id, ips)
                done[eni_id] = list(ips)
                continue
            except Exception as err:  # noqa: BLE001 - one ENI's failure must not stop the others
                if len(ips) == 1 or ec2_mod.error_code(err) in ec2_mod.THROTTLING_CODES:
                    failed(eni_id, ips, err)
                    continue
            # The batch failed for a reason other than throttling: one bad address must not block the rest.
            for ip in ips:
                try:
                    call(eni_id, [ip])
                    done.setdefault(eni_id, []).append(ip)
                except Exception as err:  # noqa: BLE001
                    failed(eni_id, [ip], err)

    def _finish(self, report: dict[str, Any], started: float) -> dict[str, Any]:
        report["ok"] = not report["errors"]
        report["durationMs"] = round((time.monotonic() - started) * 1000)
        self.emit(report)
        return report


class Loop:
    """Runs `reconcile` on start, every `resync` seconds, and `debounce` seconds after the last poke."""

    def __init__(
        self, reconcile: Callable[[str], dict[str, Any]], resync: float, debounce: float, retry_base: float = 2.0
    ) -> None:
        self.reconcile = reconcile
        self.resync = resync
        self.debounce = debounce
        self.retry_base = retry_base
        self.stop = threading.Event()
        self._poked = threading.Event()

    def poke(self) -> None:
        self._poked.set()

    def run(self) -> None:
        trigger = "start"
        failures = 0
        while not self.stop.is_set():
            report = self.reconcile(trigger)
            failures = 0 if report.get("ok") else failures + 1
            # After a failed pass retry sooner (2, 4, 8 ... s), never later than the resync period.
            wait = min(self.resync, self.retry_base * 2 ** (failures - 1)) if failures else self.resync
            if self._poked.wait(wait):
                trigger = "watch"
                # Debounce: let a burst of pod events settle into one pass.
                while not self.stop.is_set():
                    self._poked.clear()
                    if not self._poked.wait(self.debounce):
                        break
            else:
                trigger = "retry" if failures else "resync"


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        settings = Settings.from_env(os.environ if env is None else env)
    except SettingsError as err:
        log.error(json.dumps({"msg": "bad configuration", "error": str(err)}))
        return 2

    try:
        credentials.require_container_credentials(os.environ if env is None else env)
    except credentials.CredentialsError as err:
        log.error(json.dumps({"msg": "cannot start", "node": settings.node_name, "error": str(err)}))
        return 3
    credentials.disable_instance_metadata()
    try:
        kube_client = kube.KubeClient()
        instance_id, zone = kube.node_instance(kube_client.get_node(settings.node_name))
    except Exception as err:  # noqa: BLE001 - exit non-zero with one readable line; kubelet restarts the pod
        log.error(json.dumps({"msg": "cannot start", "node": settings.node_name, "error": str(err)[:500]}))
        return 1
    ec2_client = ec2_mod.make_client(settings.region)
    records = claims.KubeRecords()
    controller = Controller(
        vet_claims=claims.ClaimChecker(
            list_ippools=records.list_ippools, describe_holders=claims.ec2_holders(ec2_client),
            owned=claims.owned_by(settings.owner_prefix), emit_event=records.emit_event).vet,
        ec2=ec2_mod.Ec2Adapter(ec2_client, settings.owner_prefix),
        instance_id=instance_id,
        node_name=settings.node_name,
        pod_ranges=settings.pod_ranges,
        list_pods=lambda: kube_client.list_pods(settings.node_name),
        master_device_index=kube.NadMasterCache(kube_client.get_nad, settings.ifname_prefix),
        patch_pod_condition=kube_client.patch_pod_condition,
    )
    loop = Loop(controller.reconcile, settings.resync_seconds, settings.debounce_seconds)

    def shutdown(signum: int, _frame: Any) -> None:
        log.info(json.dumps({"msg": "stopping", "signal": signum}))
        loop.stop.set()
        loop.poke()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    watcher = threading.Thread(
        target=kube_client.watch_pods, args=(settings.node_name, loop.poke, loop.stop), daemon=True, name="watch"
    )
    watcher.start()
    startup_taint.start(settings.node_name, settings.ifname_prefix, loop.stop)  # issue 9: the node's startup taint
    log.info(
        json.dumps(
            {
                "msg": "started",
                "node": settings.node_name,
                "instanceId": instance_id,
                "availabilityZone": zone,
                "podRanges": [str(r) for r in settings.pod_ranges],
                "resyncSeconds": settings.resync_seconds,
            }
        )
    )
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
