"""Entry point and reconcile loop of the Multus pod-address controller (one per node).

Two watch caches (informer.py) hold the node's pods and its Node object: one LIST each on start (and after a
410), then WATCH. Each reconcile reads the pods from the cache (no API request), reads the instance's Multus
ENIs (one DescribeNetworkInterfaces), plans with the pure `planning.plan`, trims the plan to each ENI's free
address slots (`capacity.fit`, oldest pods first), applies it ENI by ENI (at most one assign and one unassign
call per ENI), confirms new addresses through the instance metadata (`imds.py`), sets the readiness-gate
condition of the pods that opt in, publishes the free slots per network as an extended resource on the Node,
records Kubernetes events for refusals and failures, and logs one JSON line saying what it did.

When passes run (`Loop`): on start; every RESYNC_SECONDS, whatever else happens; and after pod changes, at most
MAX_DEBOUNCE_SECONDS after the first change of a burst (DEBOUNCE_SECONDS after the last one if the burst ends
sooner); after a failed pass, or one whose new addresses are not confirmed yet, after an exponential backoff
with jitter.

Environment: NODE_NAME (downward API), POD_RANGES (JSON list of CIDRs), AWS_REGION, ENI_OWNER_PREFIX (the stack
prefix; only ENIs tagged eks-multus/owner=<prefix>-* are touched), IFNAME_PREFIX (default "multus": the node
names the ENI at device index N `<prefix>N`), and the tunables in `Settings` (README: Configuration).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multus_ip_controller import capacity, informer, kube, planning, readiness
from multus_ip_controller import ec2 as ec2_mod
from multus_ip_controller import imds as imds_mod
from multus_ip_controller.health import Health, serve
from multus_ip_controller.metrics import Metrics
from multus_ip_controller.recorder import EventRecorder

log = logging.getLogger("multus_ip_controller")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    node_name: str
    pod_ranges: tuple[planning.IPv4Network, ...]
    region: str
    resync_seconds: float = 60.0
    debounce_seconds: float = 1.0
    max_debounce_seconds: float = 3.0
    owner_prefix: str | None = None
    ifname_prefix: str = "multus"
    liveness_seconds: float = 180.0
    health_address: str = "127.0.0.1:9826"
    imds_endpoint: str | None = imds_mod.DEFAULT_ENDPOINT
    confirm_seconds: float = 2.0
    kube_timeout_seconds: float = 15.0
    watch_timeout_seconds: int = 300

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
        resync = number("RESYNC_SECONDS", 60.0)
        debounce = number("DEBOUNCE_SECONDS", 1.0)
        max_debounce = number("MAX_DEBOUNCE_SECONDS", max(3.0, debounce))
        if max_debounce < debounce:
            raise SettingsError(
                f"MAX_DEBOUNCE_SECONDS={max_debounce:g} must not be below DEBOUNCE_SECONDS={debounce:g}")
        liveness = number("LIVENESS_SECONDS", max(3 * resync, 60.0))
        if liveness <= resync:
            raise SettingsError(f"LIVENESS_SECONDS={liveness:g} must exceed RESYNC_SECONDS={resync:g}: a pass "
                                "runs at least once per resync period")
        health_address = env.get("HEALTH_ADDRESS", "").strip() or "127.0.0.1:9826"
        host, _, port = health_address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"HEALTH_ADDRESS={health_address!r} is not host:port")
        imds_endpoint = env.get("IMDS_ENDPOINT", "").strip() or imds_mod.DEFAULT_ENDPOINT
        return cls(
            node_name=need("NODE_NAME"),
            pod_ranges=pod_ranges,
            region=env.get("AWS_REGION", "").strip() or need("AWS_DEFAULT_REGION"),
            resync_seconds=resync,
            debounce_seconds=debounce,
            max_debounce_seconds=max_debounce,
            owner_prefix=env.get("ENI_OWNER_PREFIX", "").strip() or None,
            ifname_prefix=env.get("IFNAME_PREFIX", "").strip() or "multus",
            liveness_seconds=liveness,
            health_address=health_address,
            imds_endpoint=None if imds_endpoint == "off" else imds_endpoint,
            confirm_seconds=number("CONFIRM_SECONDS", 2.0),
            kube_timeout_seconds=number("KUBE_TIMEOUT_SECONDS", 15.0),
            watch_timeout_seconds=int(number("WATCH_TIMEOUT_SECONDS", 300)),
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
        instance_type: str | None = None,
        confirm: Callable[[Mapping[str, Sequence[str]], Sequence[planning.Eni]], Mapping[str, set[str]]] | None = None,
        publish_resources: Callable[[dict[str, int]], None] | None = None,
        published_resources: Callable[[], dict[str, int]] | None = None,
        events: EventRecorder | None = None,
        metrics: Metrics | None = None,
        on_patched: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
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
        self.instance_type = instance_type
        self.ipv4_per_interface: int | None = None  # learned once, on the first pass that can
        # Without IMDS: one describe after the assignments confirms them (never EC2's acceptance alone).
        self.confirm = confirm or imds_mod.DescribeConfirmer(lambda: self.ec2.multus_enis(self.instance_id))
        self.publish_resources = publish_resources
        self.published_resources = published_resources
        self._published: dict[str, int] | None = None  # what we last published, when no node cache says it
        self.events = events
        self.metrics = metrics
        self.on_patched = on_patched
        self._seen: dict[tuple[str, str], float] = {}  # (pod, ip) -> when its address first appeared
        self._lock = threading.Lock()

    # ---- watch cache callback

    def pod_changed(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Called by the pod cache for every change; True when the change matters (the loop is poked). Notes
        when a pod's addresses first appear, for the assignment-latency histogram."""
        if new is not None:
            addresses, _ = kube.pod_addresses(new, self.pod_ranges)
            now = time.monotonic()
            with self._lock:
                for address in addresses:
                    self._seen.setdefault((address.pod, address.ip), now)
        if old is None or new is None:
            return True
        return kube.pod_signature(old) != kube.pod_signature(new)

    # ---- one pass

    def _desired(self, pods: list[dict[str, Any]]) -> tuple[list[planning.PodAddress], list[str]]:
        """Where the pods' claims become desired assignments: every check on a claim belongs here."""
        return kube.desired_addresses(pods, self.pod_ranges, self.master_device_index)

    def _learn_limit(self, report: dict[str, Any]) -> None:
        if self.ipv4_per_interface is not None:
            return
        try:
            self.instance_type, self.ipv4_per_interface = self.ec2.ipv4_per_interface(
                self.instance_id, self.instance_type)
        except Exception as err:  # noqa: BLE001 - no limit yet: assign uncapped, publish nothing, retry next pass
            report["errors"].append({"op": "limits", "code": ec2_mod.error_code(err), "message": str(err)[:300]})

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
        except informer.NotSynced as err:
            report["errors"].append({"op": "cache", "code": "NotSynced", "message": str(err)})
            return self._finish(report, started)
        except Exception as err:  # noqa: BLE001 - read failures end this pass; the loop retries with backoff
            report["errors"].append({"op": "read", "code": kube.api_error_code(err), "message": str(err)[:300]})
            return self._finish(report, started)
        desired, problems = self._desired(pods)
        try:
            enis = self.ec2.multus_enis(self.instance_id)
        except Exception as err:  # noqa: BLE001
            report["errors"].append({"op": "read", "code": ec2_mod.error_code(err), "message": str(err)[:300]})
            return self._finish(report, started)
        self._learn_limit(report)

        result = planning.plan(desired, enis, self.pod_ranges)
        fitted = capacity.fit(result, desired, enis, self.ipv4_per_interface)
        report.update(
            pods=len(pods),
            enis=len(enis),
            desired=len({a.ip for a in desired}),
            inPlace=result.in_place,
            skipped=[{"pod": s.pod, "ip": s.ip, "reason": s.reason} for s in result.skipped],
            refused=[{"pod": s.pod, "ip": s.ip, "reason": s.reason} for s in fitted.refused],
            byDeviceIndex=list(result.by_device_index),
            problems=problems,
            ipv4PerInterface=self.ipv4_per_interface,
        )
        # Unassign first: it frees room on ENIs near their per-interface address limit.
        self._apply("unassign", self.ec2.unassign, fitted.plan.unassign, report)
        self._apply("assign", self.ec2.assign, fitted.plan.assign, report)
        confirmed = self._confirm(report, enis)
        reasons = {s.ip: s.reason for s in fitted.refused}
        for eni_id, ips in report["unconfirmed"].items():
            for ip in ips:
                reasons[ip] = f"assigned to {eni_id}, not yet listed on it by the instance metadata (not routable yet)"
        after = readiness.enis_after(enis, confirmed, report["unassigned"])
        self._gate_readiness(pods, desired, after, reasons, report)
        self._publish(after, desired, pods, report)
        self._record_events(pods, fitted.refused, report)
        self._observe_latency(desired, after)
        return self._finish(report, started)

    def _confirm(self, report: dict[str, Any], enis: list[planning.Eni]) -> dict[str, list[str]]:
        """The assigned addresses confirmed on their ENI; the rest go to report["unconfirmed"]."""
        assigned = report["assigned"]
        report["unconfirmed"] = {}
        if not assigned:
            return {}
        try:
            confirmed = self.confirm(assigned, enis)
        except Exception as err:  # noqa: BLE001 - unconfirmed: not Ready yet, the next pass's describe decides
            report["errors"].append({"op": "confirm", "code": ec2_mod.error_code(err), "message": str(err)[:300]})
            confirmed = {}
        out: dict[str, list[str]] = {}
        for eni_id, ips in assigned.items():
            ok = set(confirmed.get(eni_id, set()))
            out[eni_id] = [ip for ip in ips if ip in ok]
            missing = [ip for ip in ips if ip not in ok]
            if missing:
                report["unconfirmed"][eni_id] = missing
        return out

    def _gate_readiness(
        self,
        pods: list[dict[str, Any]],
        desired: list[planning.PodAddress],
        after: list[planning.Eni],
        reasons: Mapping[str, str],
        report: dict[str, Any],
    ) -> None:
        """Set the readiness-gate condition of every gated pod whose condition changed; one failure stops nothing."""
        if self.patch_pod_condition is None:
            return
        decided = readiness.decide(pods, desired, after, self.pod_ranges, reasons)
        patched: dict[str, str] = {}
        by_key = {kube.pod_key(p): p for p in pods}
        for namespace, name, condition in readiness.changes(pods, decided, self.clock()):
            key = f"{namespace}/{name}"
            try:
                self.patch_pod_condition(namespace, name, condition)
                patched[key] = f"{condition['status']}/{condition['reason']}"
                if self.on_patched is not None and key in by_key:
                    self.on_patched(by_key[key], condition)
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

    def _publish(self, after: list[planning.Eni], desired: list[planning.PodAddress], pods: list[dict[str, Any]],
                 report: dict[str, Any]) -> None:
        """Publish each network's free slots on the Node when they differ from what it carries."""
        if self.publish_resources is None:
            return
        wanted = capacity.extended_resources(after, desired, pods, self.ipv4_per_interface, self.pod_ranges)
        if not wanted:
            return
        report["extendedResources"] = wanted
        if self.metrics is not None:
            for name, value in wanted.items():
                self.metrics.free_slots.labels(name).set(value)
        # The Node's own values when its watch cache has them, else what this process last sent.
        current = self.published_resources() if self.published_resources else None
        if current is None:
            current = self._published
        if current is not None and all(current.get(k) == v for k, v in wanted.items()):
            return
        try:
            self.publish_resources(wanted)
            self._published = dict(wanted)
            report["published"] = wanted
        except Exception as err:  # noqa: BLE001 - retried by the next pass
            report["errors"].append({"op": "capacity", "code": kube.api_error_code(err), "message": str(err)[:300]})

    def _record_events(self, pods: list[dict[str, Any]], refused: Sequence[planning.Skipped],
                       report: dict[str, Any]) -> None:
        if self.events is None:
            return
        by_key = {kube.pod_key(p): p for p in pods}
        for item in refused:
            for key in item.pod.split(", "):
                if key in by_key:
                    self.events.warn(by_key[key], "AddressRefused", f"{item.ip}: {item.reason}")
        pods_by_ip: dict[str, list[str]] = {}
        for pod in pods:
            for address in kube.pod_addresses(pod, self.pod_ranges)[0]:
                pods_by_ip.setdefault(address.ip, []).append(address.pod)
        for error in report["errors"]:
            if error.get("op") not in ("assign", "unassign"):
                continue
            for ip in error.get("ips", []):
                for key in pods_by_ip.get(ip, []):
                    self.events.warn(by_key[key], "AddressAssignFailed",
                                     f"{ip}: {error['op']} on {error['eni']} failed: {error['code']}")
        self.events.forget_except((p.get("metadata") or {}).get("uid", "") for p in pods)

    def _observe_latency(self, desired: list[planning.PodAddress], after: list[planning.Eni]) -> None:
        on = {(e.eni_id, ip) for e in after for ip in e.secondary_ips}
        by_mac = {e.mac: e.eni_id for e in after}
        now = time.monotonic()
        live = {(a.pod, a.ip) for a in desired}
        with self._lock:
            for address in desired:
                seen = self._seen.get((address.pod, address.ip))
                if seen is None or seen < 0:
                    continue
                if (by_mac.get(address.mac or ""), address.ip) in on:
                    if self.metrics is not None:
                        self.metrics.assign_latency.observe(now - seen)
                    self._seen[(address.pod, address.ip)] = -1.0  # observed once
            for key in [k for k in self._seen if k not in live]:
                del self._seen[key]

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
        duration = time.monotonic() - started
        report["durationMs"] = round(duration * 1000)
        if self.metrics is not None:
            self.metrics.pass_duration.observe(duration)
            self.metrics.passes.labels(report["trigger"], "ok" if report["ok"] else "error").inc()
            self.metrics.refused.set(len(report.get("refused", [])))
        self.emit(report)
        return report


class Loop:
    """Runs `reconcile`: on start; every `resync` seconds on a fixed schedule that pokes never move; after a
    poke, `debounce` seconds after the last poke of a burst but never more than `max_delay` after its first;
    after a failed pass (or one whose new addresses are not confirmed yet), after an exponential backoff with
    jitter (retry_base x 2^(n-1), times a random factor in [0.5, 1), at most `resync`)."""

    def __init__(
        self,
        reconcile: Callable[[str], dict[str, Any]],
        resync: float,
        debounce: float,
        retry_base: float = 2.0,
        max_delay: float | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        on_pass: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.reconcile = reconcile
        self.resync = resync
        self.debounce = debounce
        self.max_delay = max(max_delay if max_delay is not None else 3 * debounce, debounce)
        self.retry_base = retry_base
        self._rng = rng
        self._clock = clock
        self._on_pass = on_pass or (lambda report: None)
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._first_poke: float | None = None
        self._last_poke: float | None = None

    def poke(self) -> None:
        now = self._clock()
        with self._lock:
            if self._first_poke is None:
                self._first_poke = now
            self._last_poke = now
        self._wake.set()

    def _backoff(self, failures: int) -> float:
        return min(self.resync, self.retry_base * 2 ** (failures - 1)) * (0.5 + self._rng() / 2)

    def run(self) -> None:
        trigger = "start"
        failures = 0
        next_resync = self._clock() + self.resync
        next_retry = 0.0
        while not self.stop.is_set():
            with self._lock:  # a pass reads the whole state: pokes before it starts are covered by it
                self._first_poke = self._last_poke = None
            report = self.reconcile(trigger)
            self._on_pass(report)
            again = not report.get("ok") or bool(report.get("unconfirmed"))
            failures = failures + 1 if again else 0
            now = self._clock()
            if failures:
                next_retry = now + self._backoff(failures)
            while next_resync <= now:
                next_resync += self.resync
            trigger = self._wait(next_resync, next_retry if failures else None)
            if trigger == "resync":
                next_resync += self.resync

    def _wait(self, next_resync: float, next_retry: float | None) -> str:
        while not self.stop.is_set():
            with self._lock:
                first, last = self._first_poke, self._last_poke
            due = {"resync": next_resync}
            if next_retry is not None:
                due["retry"] = next_retry
            if first is not None and last is not None:
                due["watch"] = min(last + self.debounce, first + self.max_delay)
            trigger, when = min(due.items(), key=lambda item: item[1])
            now = self._clock()
            if when <= now:
                return trigger
            self._wake.wait(when - now)
            self._wake.clear()
        return "stop"


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        settings = Settings.from_env(os.environ if env is None else env)
    except SettingsError as err:
        log.error(json.dumps({"msg": "bad configuration", "error": str(err)}))
        return 2

    metrics = Metrics()
    try:
        kube_client = kube.KubeClient(
            timeout=(min(5.0, settings.kube_timeout_seconds), settings.kube_timeout_seconds),
            on_request=lambda verb, resource: metrics.kube_requests.labels(verb, resource).inc(),
        )
        node = kube_client.get_node(settings.node_name)
        instance_id, zone = kube.node_instance(node)
    except Exception as err:  # noqa: BLE001 - exit non-zero with one readable line; kubelet restarts the pod
        log.error(json.dumps({"msg": "cannot start", "node": settings.node_name, "error": str(err)[:500]}))
        return 1
    instance_type = ((node.get("metadata") or {}).get("labels") or {}).get(kube.INSTANCE_TYPE_LABEL)

    loop_ref: list[Loop] = []
    node_cache = informer.Informer(
        name="node", list_fn=lambda: kube_client.list_node_rv(settings.node_name),
        watch_fn=lambda rv, timeout: kube_client.watch_node(settings.node_name, rv, timeout),
        strip=kube.strip_node, watch_timeout=settings.watch_timeout_seconds,
    )

    def published() -> dict[str, int] | None:
        nodes = node_cache.snapshot() if node_cache.synced else []
        return kube.published_resources(nodes[0]) if nodes else None

    confirm = None
    if settings.imds_endpoint:
        confirm = imds_mod.ImdsConfirmer(imds_mod.Imds(settings.imds_endpoint), settings.confirm_seconds)
    controller = Controller(
        ec2=ec2_mod.Ec2Adapter(ec2_mod.make_client(settings.region), settings.owner_prefix,
                               on_call=lambda op, outcome: metrics.ec2_calls.labels(op, outcome).inc()),
        instance_id=instance_id,
        node_name=settings.node_name,
        pod_ranges=settings.pod_ranges,
        list_pods=lambda: pod_cache.snapshot(),
        master_device_index=kube.NadMasterCache(kube_client.get_nad, settings.ifname_prefix),
        patch_pod_condition=kube_client.patch_pod_condition,
        instance_type=instance_type,
        confirm=confirm,
        publish_resources=lambda values: kube_client.patch_node_resources(settings.node_name, values),
        published_resources=published,
        events=EventRecorder(kube_client.create_event, settings.node_name),
        metrics=metrics,
        on_patched=lambda pod, condition: pod_cache.update_local(
            (pod.get("metadata") or {}).get("uid", ""), lambda p: _with_condition(p, condition)),
    )

    def pod_changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if controller.pod_changed(old, new) and loop_ref:
            loop_ref[0].poke()

    pod_cache = informer.Informer(
        name="pods", list_fn=lambda: kube_client.list_pods_rv(settings.node_name),
        watch_fn=lambda rv, timeout: kube_client.watch_pods(settings.node_name, rv, timeout),
        strip=kube.strip_pod, on_change=pod_changed, watch_timeout=settings.watch_timeout_seconds,
    )
    health = Health(settings.liveness_seconds)
    health.synced = lambda: pod_cache.synced and node_cache.synced

    def on_pass(report: dict[str, Any]) -> None:
        health.pass_finished(bool(report.get("ok")))
        for cache in (pod_cache, node_cache):
            metrics.cache_objects.labels(cache.name).set(len(cache))
            metrics.cache_lists.labels(cache.name).set(cache.lists)

    loop = Loop(controller.reconcile, settings.resync_seconds, settings.debounce_seconds,
                max_delay=settings.max_debounce_seconds, on_pass=on_pass)
    loop_ref.append(loop)
    try:
        server = serve(settings.health_address, health, metrics.render)
    except OSError as err:
        log.error(json.dumps({"msg": "cannot start", "error": f"HEALTH_ADDRESS {settings.health_address}: {err}"}))
        return 1

    def shutdown(signum: int, _frame: Any) -> None:
        log.info(json.dumps({"msg": "stopping", "signal": signum}))
        loop.stop.set()
        loop.poke()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    for cache in (node_cache, pod_cache):
        threading.Thread(target=cache.run, args=(loop.stop,), daemon=True, name=f"watch-{cache.name}").start()
    # Other per-node duties that need the same client start here.
    pod_cache.wait_synced(settings.kube_timeout_seconds)  # the first pass waits briefly for the first list
    log.info(
        json.dumps(
            {
                "msg": "started",
                "node": settings.node_name,
                "instanceId": instance_id,
                "instanceType": instance_type,
                "availabilityZone": zone,
                "podRanges": [str(r) for r in settings.pod_ranges],
                "resyncSeconds": settings.resync_seconds,
                "healthAddress": settings.health_address,
            }
        )
    )
    loop.run()
    server.shutdown()
    return 0


def _with_condition(pod: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    """A copy of a cached pod carrying `condition` (merged by type, as the strategic merge patch does)."""
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == condition["type"]), {})
    conditions.append({**old, **condition})
    status["conditions"] = conditions
    return {**pod, "status": status}


if __name__ == "__main__":
    sys.exit(main())
