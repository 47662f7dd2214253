"""Ready means routable: confirm an assigned address through the instance metadata (IMDSv2), as AWS documents.

AssignPrivateIpAddresses that moves an address from another ENI completes asynchronously: EC2 accepts the call
before the address routes to its new ENI. AWS documents confirming the move through the instance metadata's
`network/interfaces/macs/<mac>/local-ipv4s`, which lists the addresses the instance's ENI with that MAC holds.
The controller runs on the host network, so IMDS (169.254.169.254, hop limit 1) answers it; it reads no
credentials from IMDS, only that list.

`ImdsConfirmer` polls that list for the ENIs a pass assigned to, for at most `wait_seconds`; an address that has
not appeared by then stays unconfirmed (its pod is not Ready) and the next pass checks again (EC2's describe at
the start of the next pass counts as confirmation too). `DescribeConfirmer` is the fallback without IMDS: one
DescribeNetworkInterfaces after the assignments.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from multus_ip_controller.planning import Eni

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600


class Imds:
    """A minimal IMDSv2 client: session token (PUT), then GETs with the token; one timeout on every request."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0

    def _get_token(self) -> str:
        if self._token is None or self._clock() > self._token_expires:
            request = urllib.request.Request(
                f"{self.endpoint}/latest/api/token", method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - fixed endpoint
                self._token = response.read().decode().strip()
            self._token_expires = self._clock() + TOKEN_TTL_SECONDS - 60
        return self._token

    def get(self, path: str) -> str:
        for attempt in (1, 2):
            request = urllib.request.Request(f"{self.endpoint}/latest/meta-data/{path}",
                                             headers={"X-aws-ec2-metadata-token": self._get_token()})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    return response.read().decode()
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 1:  # token expired early (IMDS restarted): get a new one
                    self._token = None
                    continue
                raise
        raise RuntimeError("unreachable")

    def local_ipv4s(self, mac: str) -> set[str]:
        """The IPv4 addresses of the instance's ENI with this MAC (primary and secondary); empty if none."""
        try:
            body = self.get(f"network/interfaces/macs/{mac.lower()}/local-ipv4s")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return set()
            raise
        return {line.strip() for line in body.splitlines() if line.strip()}


class ImdsConfirmer:
    """Which of the just-assigned addresses IMDS already lists on their ENI's MAC (polls up to `wait_seconds`)."""

    def __init__(self, imds: Imds, wait_seconds: float = 2.0, interval: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.imds = imds
        self.wait_seconds = wait_seconds
        self.interval = interval
        self._sleep = sleep

    def __call__(self, assigned: Mapping[str, Sequence[str]], enis: Sequence[Eni]) -> dict[str, set[str]]:
        macs = {e.eni_id: e.mac for e in enis}
        confirmed: dict[str, set[str]] = {eni_id: set() for eni_id in assigned}
        deadline = time.monotonic() + self.wait_seconds
        while True:
            for eni_id, ips in assigned.items():
                missing = set(ips) - confirmed[eni_id]
                if missing and macs.get(eni_id):
                    confirmed[eni_id] |= missing & self.imds.local_ipv4s(macs[eni_id])
            if all(set(ips) <= confirmed[e] for e, ips in assigned.items()) or time.monotonic() >= deadline:
                return confirmed
            self._sleep(self.interval)


class DescribeConfirmer:
    """Confirmation by one DescribeNetworkInterfaces of this instance's Multus ENIs after the assignments."""

    def __init__(self, describe: Callable[[], list[Eni]]) -> None:
        self._describe = describe

    def __call__(self, assigned: Mapping[str, Sequence[str]], enis: Sequence[Eni]) -> dict[str, set[str]]:
        held = {e.eni_id: set(e.secondary_ips) for e in self._describe()}
        return {eni_id: set(ips) & held.get(eni_id, set()) for eni_id, ips in assigned.items()}
