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


def test_sustained_churn_never_stalls_passes_nor_the_periodic_resync():
    """The issue's measurement scaled 1:10: resync 6 s -> 0.6 s, debounce 2 s -> 0.2 s, a poke every 0.15 s.
    Before the bounded debounce no pass ran at all while the pokes went on (verified against that commit)."""
    starts: list[tuple[float, str]] = []
    loop = Loop(lambda t: starts.append((time.monotonic(), t)) or {"ok": True}, resync=0.6, debounce=0.2)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    churn_end = time.monotonic() + 3.0
    while time.monotonic() < churn_end:
        loop.poke()
        time.sleep(0.15)
    loop.stop.set()
    loop.poke()
    thread.join(2)
    during = [(t, trigger) for t, trigger in starts if t <= churn_end]
    gaps = [b[0] - a[0] for a, b in zip(during, during[1:], strict=False)]
    assert len(during) >= 5, during  # 3 s of churn: a pass at least every max_delay (0.6 s) and every resync
    assert max(gaps) <= 0.6 + 0.4, gaps  # bounded: never more than max_delay (3 x debounce) plus scheduling slack
    assert sum(1 for _, trigger in during if trigger == "resync") >= 2  # the resync still runs on schedule


def test_a_short_burst_of_pokes_is_one_pass_a_debounce_after_its_last_poke():
    starts: list[tuple[float, str]] = []
    loop = Loop(lambda t: starts.append((time.monotonic(), t)) or {"ok": True}, resync=3600, debounce=0.3,
                max_delay=5.0)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    time.sleep(0.1)
    for _ in range(3):
        loop.poke()
        time.sleep(0.05)
    last_poke = time.monotonic() - 0.05
    time.sleep(0.8)
    loop.stop.set()
    loop.poke()
    thread.join(2)
    watch = [t for t, trigger in starts if trigger == "watch"]
    assert len(watch) == 1 and 0.25 <= watch[0] - last_poke <= 0.8, starts


def test_backoff_is_exponential_with_jitter_and_capped_by_the_resync():
    low = Loop(lambda t: {"ok": True}, resync=30, debounce=1, retry_base=2, rng=lambda: 0.0)
    high = Loop(lambda t: {"ok": True}, resync=30, debounce=1, retry_base=2, rng=lambda: 0.999)
    assert [low._backoff(n) for n in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert [round(high._backoff(n), 1) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


def test_a_pass_with_unconfirmed_addresses_is_retried_soon():
    triggers: list[str] = []

    def reconcile(trigger):
        triggers.append(trigger)
        return {"ok": True, "unconfirmed": {"eni-1": ["10.0.4.130"]} if len(triggers) == 1 else {}}

    loop = Loop(reconcile, resync=3600, debounce=1, retry_base=0.02)
    run_loop(loop, lambda: len(triggers) >= 2)
    assert triggers[:2] == ["start", "retry"]


def test_liveness_fails_when_no_pass_finished_within_the_bound_and_readiness_needs_a_synced_cache():
    import urllib.error
    import urllib.request

    from multus_ip_controller.health import Health, serve

    now = [100.0]
    health = Health(liveness_seconds=30, clock=lambda: now[0])
    server = serve("127.0.0.1:0", health, lambda: b"# metrics\n")
    port = server.server_address[1]

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    try:
        assert get("/healthz")[0] == 200  # start counts as a pass: grace for the first one
        assert get("/readyz") == (503, "watch cache not synced")
        health.synced = lambda: True
        health.pass_finished(ok=True)
        assert get("/readyz")[0] == 200
        now[0] += 31
        status, text = get("/healthz")
        assert status == 503 and "no reconcile pass finished for 31 s" in text
        assert get("/readyz")[0] == 503
        health.pass_finished(ok=False)
        assert get("/healthz")[0] == 200 and get("/readyz") == (503, "last reconcile pass had errors")
        assert get("/metrics") == (200, "# metrics\n")
    finally:
        server.shutdown()
