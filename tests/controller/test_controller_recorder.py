"""Warning events on pods: the Event object as it is posted, once per (pod, reason, message) per period."""

from __future__ import annotations

from multus_ip_controller.recorder import EventRecorder

POD = {"metadata": {"namespace": "team-a", "name": "web-1", "uid": "uid-1"}}


def test_event_names_the_pod_and_is_not_repeated_within_the_period():
    sent: list[tuple[str, dict]] = []
    now = [0.0]
    recorder = EventRecorder(lambda ns, event: sent.append((ns, event)), "node-a", repeat_seconds=600,
                             clock=lambda: now[0], now=lambda: "2026-11-30T10:00:00Z")
    assert recorder.warn(POD, "AddressRefused", "10.0.4.130: eni-1 is full")
    assert not recorder.warn(POD, "AddressRefused", "10.0.4.130: eni-1 is full")
    assert recorder.warn(POD, "AddressAssignFailed", "10.0.4.130: assign on eni-1 failed: UnauthorizedOperation")
    ((namespace, event), _) = sent
    assert namespace == "team-a"
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": "web-1",
                                       "uid": "uid-1"}
    assert (event["type"], event["reason"], event["source"]) == (
        "Warning", "AddressRefused", {"component": "multus-pod-address-sync", "host": "node-a"})
    now[0] = 601
    assert recorder.warn(POD, "AddressRefused", "10.0.4.130: eni-1 is full")  # the period is over


def test_a_failed_post_never_raises_and_is_retried_next_time():
    calls = []

    def create(namespace, event):
        calls.append(event)
        if len(calls) == 1:
            raise TimeoutError("read timed out")

    recorder = EventRecorder(create, "node-a")
    assert not recorder.warn(POD, "AddressRefused", "m")
    assert recorder.warn(POD, "AddressRefused", "m") and len(calls) == 2


def test_gone_pods_are_forgotten():
    recorder = EventRecorder(lambda ns, event: None, "node-a")
    recorder.warn(POD, "AddressRefused", "m")
    recorder.forget_except([])
    assert recorder.warn(POD, "AddressRefused", "m")
