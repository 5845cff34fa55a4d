"""A network namespace joined to this host by a veth pair, and a partition to cut in it.

The namespace stands for another machine: a process started in it (``ip netns exec``)
reaches the host only over the veth, at the host end's address, and the host reaches it at
the namespace end's. :meth:`Namespace.cut` makes one TCP port of the host unreachable from
the namespace, both ways and silently, as a network partition does: the namespace's packets
to that port are looped back into the namespace and dropped there (it does not forward),
and the host's packets from that port are dropped on arrival. Nothing answers, nothing is
refused: connections hang until their own timeouts. Every other port (Redis, the worker's
web port) keeps working. Only the namespace's own routing policy changes; the host's is
never touched, and removing the namespace removes the veth pair with it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

_LOOP_TABLE = 100  # the namespace's routes that loop a packet back into it
_DROP_TABLE = 101  # ... and that drop what arrives
_CUT_OUT, _CUT_IN = 10, 11  # preferences of the cut's rules, before the local table's
_LOCAL_PREFERENCE = 100  # the local table's rule, moved after them


def unavailable() -> str | None:
    """Why this machine cannot make a namespace, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces and veth pairs need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class Namespace:
    name: str
    host_link: str  # the host end of the veth pair
    host_address: str  # on the host end: what the namespace reaches the host at
    address: str  # on the namespace end: what the host reaches the namespace at

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def cut(self, port: int) -> None:
        """Make the host's TCP ``port`` unreachable from the namespace, both ways."""
        rule = ["-n", self.name, "rule", "add", "ipproto", "tcp"]
        _ip(*rule, "pref", str(_CUT_OUT), "to", self.host_address, "dport", str(port),
            "lookup", str(_LOOP_TABLE))  # fmt: skip
        _ip(*rule, "pref", str(_CUT_IN), "from", self.host_address, "sport", str(port),
            "lookup", str(_DROP_TABLE))  # fmt: skip

    def heal(self) -> None:
        """Undo :meth:`cut` (for every port)."""
        for preference in (_CUT_OUT, _CUT_IN):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("-n", self.name, "rule", "del", "pref", str(preference))


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of 10.231.0.0/16 that no address of this host lies in."""
    shown = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True
    ).stdout
    used = []
    for word in shown.split():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_interface(word).network)  # "10.0.0.1/24", not a name
    while True:
        third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
        candidate = ipaddress.ip_network(f"10.231.{third}.{fourth}/30")
        if not any(candidate.overlaps(network) for network in used):
            return candidate


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace and veth pair, removed on exit whatever happened (stop the
    processes inside first: a namespace outlives its name while a process holds it)."""
    token = secrets.token_hex(3)
    name, host_link, inner_link = f"cf-part-{token}", f"cfh{token}", f"cfn{token}"
    subnet = _free_subnet()
    host_address, address = (str(host) for host in subnet.hosts())
    space = Namespace(name, host_link, host_address, address)
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", inner_link)
        _ip("link", "set", inner_link, "netns", name)
        _ip("addr", "add", f"{host_address}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("-n", name, "addr", "add", f"{address}/30", "dev", inner_link)
        _ip("-n", name, "link", "set", inner_link, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        # The cut's rules must come before the local table's (preference 0), which would
        # otherwise take every packet addressed to the namespace.
        _ip("-n", name, "rule", "add", "pref", str(_LOCAL_PREFERENCE), "lookup", "local")
        _ip("-n", name, "rule", "del", "pref", "0")
        _ip("-n", name, "route", "add", "default", "dev", "lo", "table", str(_LOOP_TABLE))
        _ip("-n", name, "route", "add", "blackhole", "default", "table", str(_DROP_TABLE))
        yield space
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)  # takes the namespace's end of the pair, and the pair
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_link)  # if the namespace never got its end
