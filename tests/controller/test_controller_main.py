"""Settings from the DaemonSet's environment, and the resync/debounce/backoff loop."""

from __future__ import annotations

import threading
import time

import pytest
from multus_ip_controller.main import Loop, Settings, SettingsError, main

ENV = {"NODE_NAME": "ip-10-0-2-201.us-west-2.compute.internal", "POD_RANGES": '["10.0.4.128/25", "10.0.5.128/25"]',
       "AWS_REGION": "us-west-2", "RESYNC_SECONDS": "30", "ENI_OWNER_PREFIX": "eks-multus"}


def test_settings_from_env():
    s = Settings.from_env(ENV)
    assert [str(r) for r in s.pod_ranges] == ["10.0.4.128/25", "10.0.5.128/25"]
    assert (s.resync_seconds, s.debounce_seconds, s.max_debounce_seconds) == (30.0, 1.0, 3.0)
    assert s.liveness_seconds == 90.0 and s.health_address == "127.0.0.1:9826"
    assert (s.owner_prefix, s.ifname_prefix) == ("eks-multus", "multus")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"NODE_NAME": ""}, "NODE_NAME is required"),
        ({"POD_RANGES": "10.0.4.0/25"}, "POD_RANGES"),
        ({"POD_RANGES": "[]"}, "non-empty"),
        ({"POD_RANGES": '["10.0.4.1/25"]'}, "host bits"),
        ({"RESYNC_SECONDS": "soon"}, "not a number"),
        ({"RESYNC_SECONDS": "0"}, "must be positive"),
    ],
)
def test_settings_errors_name_the_variable(override, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**ENV, **override})


def test_main_exits_2_on_bad_configuration():
    assert main({"POD_RANGES": "[]"}) == 2


def run_loop(loop: Loop, until) -> list[str]:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 3
    while not until() and time.monotonic() < deadline:
        time.sleep(0.005)
    loop.stop.set()
    loop.poke()
    thread.join(2)
    assert not thread.is_alive()


def test_loop_reconciles_on_start_on_resync_and_once_per_burst_of_pokes():
    triggers: list[str] = []

    def reconcile(trigger):
        triggers.append(trigger)
        if len(triggers) == 2:  # a burst while the second pass runs
            for _ in range(5):
                loop.poke()
        return {"ok": True}

    loop = Loop(reconcile, resync=0.05, debounce=0.02)
    run_loop(loop, lambda: len(triggers) >= 4)
    assert triggers[:4] == ["start", "resync", "watch", "resync"]


def test_loop_retries_sooner_after_a_failed_pass():
    triggers: list[str] = []
    loop = Loop(lambda t: triggers.append(t) or {"ok": len(triggers) > 1}, resync=3600, debounce=0.01, retry_base=0.01)
    loop_started = time.monotonic()
    run_loop(loop, lambda: len(triggers) >= 2)
    assert triggers[:2] == ["start", "retry"]
    assert time.monotonic() - loop_started < 2  # backoff, not the 1 h resync


def test_main_exits_1_with_one_line_when_it_cannot_reach_the_cluster(monkeypatch, caplog):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main({**ENV}) == 1
    assert any('"cannot start"' in r.getMessage() for r in caplog.records)
