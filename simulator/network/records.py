"""Tables of what a :class:`~simulator.network.network.Network` did, as pandas DataFrames.

Times in seconds, sizes in bytes, rates in bytes/s. Links are directed: undirected edge ``e`` of the
graph is link ``2e`` from its first to its second node and ``2e + 1`` back.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def flows_table(network, *, paths: bool = False) -> pd.DataFrame:
    """One row per flow: ``flow, src, dst, bytes, transfers, start_s, tx_end_s, end_s, latency_s,
    hops, tag`` (and ``path``, the node sequence, with ``paths=True``).

    ``bytes`` is every byte the flow moved: its size times ``transfers``, the point-to-point
    transfers it stands for (more than one for a coupled group of hops, whose ``src`` and
    ``dst`` are its first hop's and whose ``path`` is its hops' routes one after another).
    ``tx_end_s`` is when the last byte left the source, ``end_s`` when it arrived; both are NaN
    for a flow still running.
    """
    nodes, link_src, link_dst = network.links.nodes, network.links.link_src, network.links.link_dst
    rows = {"flow": [], "src": [], "dst": [], "bytes": [], "transfers": [], "start_s": [],
            "tx_end_s": [], "end_s": [], "latency_s": [], "hops": [], "tag": []}
    if paths:
        rows["path"] = []
    for f in network.flows:
        rows["flow"].append(f.id)
        rows["src"].append(f.src)
        rows["dst"].append(f.dst)
        rows["bytes"].append(f.nbytes * f.transfers)
        rows["transfers"].append(f.transfers)
        rows["start_s"].append(f.start_s)
        rows["tx_end_s"].append(f.tx_end_s)
        rows["end_s"].append(f.end_s)
        rows["latency_s"].append(f.latency_s)
        rows["hops"].append(int(f.links.size))
        rows["tag"].append(f.tag)
        if paths:
            rows["path"].append(tuple([nodes[link_src[f.links[0]]]] if f.links.size else [f.src])
                                + tuple(nodes[link_dst[l]] for l in f.links.tolist()))
    return pd.DataFrame(rows)


def _link_frame(network) -> pd.DataFrame:
    a = network.links
    return pd.DataFrame({
        "link": np.arange(len(a.link_src)),
        "src": [a.nodes[i] for i in a.link_src.tolist()],
        "dst": [a.nodes[i] for i in a.link_dst.tolist()],
        "bandwidth_Bps": a.bandwidth_Bps,
    })


def links_table(network) -> pd.DataFrame:
    """One row per directed link: ``link, src, dst, kind, bandwidth_Bps, latency_s, bytes,
    busy_s, utilisation``.

    ``bytes`` is what the link carried up to now, ``busy_s`` how long at least one flow crossed
    it, and ``utilisation`` the mean of rate / bandwidth over ``[0, now]`` (NaN at time 0).
    """
    now = network.env.now
    rate = network._link_rate
    elapsed = now - network._link_since
    frame = _link_frame(network)
    kinds = [k for _, _, k in network.graph.edges(data="kind", default="link")]
    frame.insert(3, "kind", np.repeat(np.array(kinds, dtype=object), 2))
    frame["latency_s"] = network.links.latency_s
    frame["bytes"] = network._link_bytes + rate * elapsed
    frame["busy_s"] = network._link_busy + np.where(rate > 0, elapsed, 0.0)
    frame["utilisation"] = frame["bytes"] / (frame["bandwidth_Bps"] * now) if now > 0 else np.nan
    return frame


def utilisation_table(network) -> pd.DataFrame:
    """Piecewise-constant link load: one row per interval in which a link's total rate was
    constant: ``link, src, dst, bandwidth_Bps, start_s, end_s, rate_Bps, utilisation``.

    Intervals cover each link from its first change on; a link with no row was never used. The last
    interval of a link ends now. Empty for a network made with ``record_utilisation=False``.
    Made for counter tracks (e.g. Chrome trace ``"C"`` events).
    """
    columns = ["link", "src", "dst", "bandwidth_Bps", "start_s", "end_s", "rate_Bps",
               "utilisation"]
    if not network.record_utilisation or not network._series:
        return pd.DataFrame(columns=columns)
    links = np.concatenate([l for l, _, _ in network._series])
    starts = np.concatenate([np.full(l.size, t) for l, t, _ in network._series])
    rates = np.concatenate([r for _, _, r in network._series])
    order = np.lexsort((starts, links))  # by link, then time; appends are already time-ordered
    links, starts, rates = links[order], starts[order], rates[order]
    ends = np.append(starts[1:], np.nan)
    last = np.append(links[1:] != links[:-1], True)
    ends[last] = network.env.now
    keep = ends > starts
    frame = _link_frame(network).iloc[links[keep]].reset_index(drop=True)
    frame = frame.assign(start_s=starts[keep], end_s=ends[keep], rate_Bps=rates[keep])
    frame["utilisation"] = frame["rate_Bps"] / frame["bandwidth_Bps"]
    return frame[columns]
