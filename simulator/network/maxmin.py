"""Max-min fair rates by progressive filling, vectorised with numpy.

Max-min fairness (Bertsekas & Gallager, *Data Networks*, 2nd ed., section 6.5.2): no flow's rate can
grow without lowering the rate of a flow that already has less. Progressive filling finds it: raise
every unfrozen flow's rate together; when a link fills up, the flows crossing it are frozen at the
link's fair share. Each round below does that in one step: the link with the smallest fair share
``remaining capacity / unfrozen flows`` is the next to fill, and every flow crossing a link with
exactly that share is frozen at it.

Cost: one round per distinct bottleneck level, each O(pairs + links) numpy work, where a pair is one
(flow, link) incidence; symmetric traffic (rings, all-to-all on symmetric fabrics) has few levels.
Ties are exact (no tolerance), so a flow's rate depends only on the links and flows of its own
connected component, never on unrelated flows or on the order flows are listed.
"""
from __future__ import annotations

import numpy as np


def maxmin_rates(pair_flow: np.ndarray, pair_link: np.ndarray, capacity: np.ndarray,
                 n_flows: int) -> np.ndarray:
    """Max-min fair rate of each flow (same unit as ``capacity``, e.g. bytes/s).

    Parameters
    ----------
    pair_flow, pair_link : int arrays of equal length
        Flow ``pair_flow[i]`` crosses link ``pair_link[i]``. A pair may repeat: a coupled flow
        crossing a link k times is k pairs, and gets the rate of a flow weighted k there (it
        uses k times its rate of that link's capacity).
    capacity : float array
        Capacity of each link, indexed by the values of ``pair_link``; all positive.
    n_flows : int
        Number of flows; every flow in ``range(n_flows)`` must cross at least one link.

    Examples
    --------
    Three flows, two unit links; flow 0 crosses both (the textbook example):

    >>> maxmin_rates(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([1.0, 1.0]), 3)
    array([0.5, 0.5, 0.5])
    """
    rates = np.zeros(n_flows)
    pf = np.asarray(pair_flow, dtype=np.int64)
    pl = np.asarray(pair_link, dtype=np.int64)
    remaining = np.array(capacity, dtype=float)
    count = np.bincount(pl, minlength=len(remaining)).astype(float)
    share = np.empty_like(remaining)
    frozen = np.zeros(n_flows, dtype=bool)
    while pf.size:
        share.fill(np.inf)
        np.divide(remaining, count, out=share, where=count > 0)
        level = share.min()
        newly = pf[(share == level)[pl]]
        rates[newly] = level
        frozen[newly] = True
        now_frozen = frozen[pf]
        released = np.bincount(pl[now_frozen], minlength=len(remaining))
        remaining -= released * level
        np.maximum(remaining, 0.0, out=remaining)
        count -= released
        keep = ~now_frozen
        pf, pl = pf[keep], pl[keep]
    return rates
