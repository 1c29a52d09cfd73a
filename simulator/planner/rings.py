"""Rings as NCCL builds them on multi-GPU servers: channels, NVLink orders, rails.

One ring visits every member; a collective runs several rings at once (NCCL's *channels*), each
carrying an equal share of the buffer.

**Inside one server** the rings are :func:`~simulator.planner.orders.pack_cycles` over the
members' GPU-to-GPU links (NVLink mesh), or one ring in member order (NVSwitch, where every
order is equivalent, and PCIe-only servers).

**Across servers** (every server holding the same number ``m`` of members) there is one channel
per *rail*: per NIC that the members of a server are bound to (``nic`` node attribute, NCCL's
GPU-NIC affinity). Channel ``c`` on rail ``r`` enters every server on the member bound to NIC
``r`` and leaves it from a member that reaches the same NIC without crossing the CPU (bound to
it, or under the same PCIe switch), so every inter-server hop goes NIC ``r`` -> NIC ``r`` of the
next server: the channel stays on its rail, as NCCL does with ``NCCL_CROSS_NIC=0`` and, where
it can, by default (``NCCL_CROSS_NIC=2``; NCCL environment-variable documentation). Inside each
server the channel visits the other members along the NVLink path
(:func:`~simulator.planner.orders.best_path`) from its entry to its exit GPU. Where no such exit
exists (a server whose members are each alone on their NIC, or ``cross_nic="always"``), the
channel leaves from the entry GPU of the next channel and crosses rails, as ``NCCL_CROSS_NIC=1``
allows; ``cross_nic="never"`` refuses that.
"""
from __future__ import annotations

from typing import Hashable

from simulator.errors import SpecError
from simulator.planner.layout import Layout, distinct
from simulator.planner.orders import best_path, pack_cycles, take
from simulator.planner.plan import Hop

CROSS_NIC = ("auto", "always", "never")


def ring_orders(layout: Layout, *, cross_nic: str = "auto") -> list[tuple[list, list]]:
    """The rings of a collective over ``layout``: per channel, ``(order, exits)`` where
    ``order`` lists every member once and ``exits[i]`` is the hop from ``order[i]`` to
    ``order[i + 1]`` (the last wraps to the first)."""
    if cross_nic not in CROSS_NIC:
        raise SpecError("unknown cross_nic; valid: " + ", ".join(CROSS_NIC), field="cross_nic",
                        value=cross_nic)
    servers = layout.servers
    if len(servers) == 1:
        orders = intra_cycles(layout, layout.members)
        return [(order, _hops(layout, order, {})) for order in orders]
    m = layout.per_server
    rails = _rails(layout) if m is not None else None
    if rails is None:  # uneven servers or members without NICs: one ring in member order
        order = list(layout.members)
        return [(order, _hops(layout, order, {}))]
    topo = layout.topo
    channels = []
    taken: dict = {s: {} for s in servers}
    for c, rail in enumerate(rails):
        order: list = []
        wires: dict = {}
        for k, s in enumerate(servers):
            members = list(layout.by_server[s])
            entry = next(n for n in members if topo.rail(n) == rail)
            exit_ = _exit(layout, members, entry, rail, rails, c, cross_nic, s)
            path = intra_path(layout, members, entry, exit_, taken[s],
                              demand=_port_Bps(layout, topo.rail_nic(s, rail)))
            order += path
            nxt = servers[(k + 1) % len(servers)]
            out_nic = topo.rail_nic(s, rail) if topo.near(exit_, topo.rail_nic(s, rail)) \
                else topo.nic.get(exit_)
            wires[path[-1]] = (out_nic, topo.rail_nic(nxt, rail))
        channels.append((order, _hops(layout, order, wires)))
    return channels


def _rails(layout: Layout) -> list[int] | None:
    """The rails the channels ride: the NIC numbers the members of each server are bound to,
    when every server's members use the same ones (else ``None``)."""
    topo = layout.topo
    sets = []
    for s in layout.servers:
        rails = [topo.rail(n) for n in layout.by_server[s]]
        if None in rails:
            return None
        sets.append(tuple(sorted(set(rails))))
    return list(sets[0]) if len(set(sets)) == 1 else None


def _exit(layout: Layout, members: list, entry, rail: int, rails: list[int], c: int,
          cross_nic: str, server) -> Hashable:
    """The member a channel on ``rail`` leaves ``server`` from."""
    topo = layout.topo
    if len(members) == 1:
        return entry
    if cross_nic != "always":
        nic = topo.rail_nic(server, rail)
        same = [n for n in members if n != entry and topo.nic.get(n) == nic]
        near = [n for n in members if n != entry and topo.near(n, nic)]
        if same or near:
            return (same or near)[0]
        if cross_nic == "never":
            raise SpecError(f"cross_nic 'never': no member of server {server!r} but the entry "
                            f"GPU reaches NIC {rail} without crossing the CPU, so a ring cannot "
                            "stay on its rail", field="cross_nic", value=cross_nic)
    nxt = rails[(c + 1) % len(rails)]
    return next(n for n in members if topo.rail(n) == nxt and n != entry) \
        if len(rails) > 1 else members[-1] if members[-1] != entry else members[0]


def _hops(layout: Layout, order: list, wires: dict) -> list[Hop]:
    """The hops of a ring: ``wires[node]`` gives the (out NIC, in NIC) of an inter-server hop
    leaving ``node``; a GPU without GPUDirect RDMA stages through its host CPU (pipelined)."""
    hops = []
    n = len(order)
    for i in range(n):
        src, dst = order[i], order[(i + 1) % n]
        hops.append(Hop(src, dst, via_for(layout, src, dst, wires.get(src))))
    return hops


def via_for(layout: Layout, src, dst, nics: tuple | None) -> tuple | None:
    """Waypoints of a hop from ``src`` to ``dst``: the given (out, in) NICs across servers, and
    the host CPUs of ends without GPUDirect RDMA; ``None`` (the ends' bound NICs) otherwise."""
    topo = layout.topo
    if layout.server_of(src) == layout.server_of(dst):
        return None
    a, b = topo.staging_host(src), topo.staging_host(dst)
    out_nic, in_nic = nics if nics is not None else (topo.nic.get(src), topo.nic.get(dst))
    if nics is None and a is None and b is None:
        return None
    points = [p for p in (a, out_nic, in_nic, b) if p is not None]
    return tuple(distinct(points))


def intra_cycles(layout: Layout, members) -> list[list]:
    """The rings inside one server: NVLink cycles packed at one speed on a point-to-point mesh,
    else one ring in member order."""
    members = list(members)
    if len(members) <= 2 or layout.hub is not None or not _mesh(layout, members):
        return [members]
    return pack_cycles(members, layout.topo.link_Bps)


def intra_path(layout: Layout, members: list, entry, exit_, taken: dict, *,
               demand: float = 0.0) -> list:
    """Every member of one server, from ``entry`` to ``exit_`` (``None``: ending anywhere),
    along NVLink where the server is a point-to-point mesh; ``demand`` (bytes/s, what the
    channel will carry, its NIC's rate) is then recorded on the path's links in ``taken`` so
    the next channel prefers other links."""
    if len(members) == 1:
        return [entry]
    rest = [n for n in members if n not in (entry, exit_)]
    if layout.hub is not None or not _mesh(layout, members):
        return [entry] + rest + ([exit_] if exit_ is not None else [])
    path = best_path(members, layout.topo.link_Bps, entry, exit_, taken)
    take(path, demand, taken)
    return path


def _port_Bps(layout: Layout, nic) -> float:
    """The fastest link of a NIC (its port into the fabric), 0 for none."""
    g = layout.topo.graph
    if nic is None:
        return 0.0
    return max((float(d["bandwidth_Bps"]) for _, _, d in g.edges(nic, data=True)), default=0.0)


def _mesh(layout: Layout, members: list) -> bool:
    """Whether some pair of members has a direct GPU-to-GPU link (an NVLink mesh)."""
    g = layout.topo.graph
    return any(g.has_edge(u, v) for i, u in enumerate(members) for v in members[i + 1:])
