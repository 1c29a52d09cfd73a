"""The two variants of the hybrid (one-weird-trick) strategy, emitted into a task graph:
``all`` (the split block takes all K*B examples at once) and ``sequential`` (K batches of B in
turn). Shared state and the spec live in :mod:`simulator.strategies.hybrid`."""
from __future__ import annotations

from typing import Any

from simulator.strategies.model_parallel import is_input


def emit_all(b, it: int) -> list[int]:
    """One iteration with the MP layers on all K*B examples at once."""
    fwd: dict[tuple[int, int], int] = {}
    exch: dict[tuple[str, Any], int] = {}
    mp_or_post = set(b.st.mp) | set(b.st.post)
    for i in [i for i in range(len(b.layers)) if not is_input(b.layers[i])]:
        layer = b.layers[i]
        costs = b.dp_costs if layer.split is None else b.mp_costs
        deps = []
        if b.k > 1 and i in mp_or_post:
            for p in b.parents(i):
                key = _forward_exchange(b, i, p)
                if key is None:
                    continue
                if key not in exch:
                    exch[key] = _emit_forward_exchange(b, key, p, fwd, it)
                if exch[key] not in deps:
                    deps.append(exch[key])
        for r in b.ranks(i):
            fwd[(r, i)] = b.compute(r, i, "forward", costs, deps=deps, it=it)
    bd: dict[tuple[int, int], int] = {}
    ready: dict[tuple[int, int], int] = {}
    back: dict[tuple[str, Any], int] = {}
    for i in [i for i in range(len(b.layers) - 1, -1, -1) if not is_input(b.layers[i])]:
        layer = b.layers[i]
        costs = b.dp_costs if layer.split is None else b.mp_costs
        deps = []
        if b.k > 1:
            for c in b.children(i):
                key = _forward_exchange(b, c, i)
                if key is None:
                    continue
                if key not in back:
                    back[key] = _emit_backward_exchange(b, key, i, bd, it)
                if back[key] not in deps:
                    deps.append(back[key])
        for r in b.ranks(i):
            bd[(r, i)], ready[(r, i)] = b.backward(r, i, costs, deps, it)
    last = [max(op for (q, _), op in ready.items() if q == r) for r in b.everyone]
    return b.allreduce_and_update(ready, last, it)


def _forward_exchange(b, i: int, p: int) -> tuple[str, Any] | None:
    """The exchange layer ``i`` needs to read parent ``p`` ("all" variant), or None if local."""
    layer, parent = b.layers[i], b.layers[p]
    if layer.split is not None and parent.split is None:
        return ("in", p)                        # conv output -> every MP split
    if parent.split is not None and parent.split != layer.split:
        if layer.split is None:
            return ("out", b.base(p))           # MP outputs -> the head on every worker
        return ("mp", b.base(p))                # @all inside the block
    return None


def _emit_forward_exchange(b, key, p: int, fwd, it: int) -> int:
    kind, what = key
    if kind == "in":
        deps = [fwd[(r, p)] for r in b.everyone if (r, p) in fwd]
        return b.collective("allgather", b.k * b.dp_bytes[p], deps, it=it,
                            name=b.layers[p].name, phase="boundary")
    group = b.st.groups[what]
    deps = [fwd[(b.layers[g].split, g)] for g in group]
    if kind == "mp":
        return b.collective("allgather", b.k * b.mp_bytes[p], deps, it=it, name=what,
                            phase="exchange")
    return b.collective("alltoall", b.mp_bytes[p], deps, it=it, name=what, phase="boundary",
                        algorithm="direct")


def _emit_backward_exchange(b, key, i: int, bd, it: int) -> int:
    """The reverse of a forward exchange: gradients back to the producer(s) of ``i``."""
    kind, what = key
    producers = [i] if kind == "in" else list(b.st.groups[what])
    deps = []
    for g in producers:
        for c in b.children(g):
            if _forward_exchange(b, c, g) == key or (kind == "mp" and c in b.st.mp):
                deps += [bd[(r, c)] for r in b.ranks(c)]
    name = b.layers[i].name if kind == "in" else what
    if kind == "in":
        return b.collective("reducescatter", b.k * b.dp_bytes[i], deps, it=it, name=name,
                            phase="boundary_grad")
    if kind == "mp":
        return b.collective("reducescatter", b.k * b.mp_bytes[i], deps, it=it, name=name,
                            phase="exchange_grad")
    return b.collective("alltoall", b.mp_bytes[i], deps, it=it, name=name,
                        phase="boundary_grad", algorithm="direct")


def emit_sequential(b, it: int) -> list[int]:
    """One iteration with the MP layers taking the K batches of B one after another."""
    fwd: dict[tuple[int, int], int] = {}
    for i in b.st.pre:
        for r in b.everyone:
            fwd[(r, i)] = b.compute(r, i, "forward", b.dp_costs, it=it)
    ready: dict[tuple[int, int], int] = {}
    reduced: dict[tuple[int, int], int] = {}     # (owner j, conv-stage layer) -> reduce op
    for j in range(b.k):
        _sequential_batch(b, j, fwd, ready, reduced, it)
    for i in reversed(b.st.pre):
        for r in b.everyone:
            deps = (reduced[(r, i)],) if (r, i) in reduced else ()
            _, ready[(r, i)] = b.backward(r, i, b.dp_costs, deps, it)
    last = [max(op for (q, _), op in ready.items() if q == r) for r in b.everyone]
    return b.allreduce_and_update(ready, last, it)


def _sequential_batch(b, j: int, fwd, ready, reduced, it: int) -> None:
    """Batch j (owned by worker j) through the MP layers and the head, forward and backward."""
    k, mb = b.k, j
    sent: dict[int, int] = {}
    for p in b.st.inputs:
        if k > 1:
            deps = (fwd[(j, p)],) if (j, p) in fwd else ()
            sent[p] = b.collective("broadcast", b.dp_bytes[p], deps, it=it, root=j,
                                   name=b.layers[p].name, phase="boundary", stream="boundary",
                                   algorithm="chain")
    out: dict[tuple[int, int], int] = {}
    gathered: dict[str, int] = {}
    for i in b.st.mp:
        r = b.layers[i].split
        deps = []
        for p in b.parents(i):
            if p in sent and r != j:
                deps.append(sent[p])
            key = _forward_exchange(b, i, p)
            if k > 1 and key is not None and key[0] == "mp":
                if key[1] not in gathered:
                    group = b.st.groups[key[1]]
                    gathered[key[1]] = b.collective(
                        "allgather", k * b.mp_bytes[p],
                        [out[(b.layers[g].split, g)] for g in group], it=it, name=key[1],
                        phase="exchange")
                if gathered[key[1]] not in deps:
                    deps.append(gathered[key[1]])
        out[(r, i)] = b.compute(r, i, "forward", b.mp_costs, deps=deps, it=it, microbatch=mb)
    # the head on worker j: gather the MP outputs of batch j, forward, backward, scatter back
    moved: dict[int, int] = {}
    for i in b.st.post:
        deps = []
        for p in b.parents(i):
            if b.layers[p].split is not None and b.layers[p].split != j:
                if p not in moved:
                    moved[p] = b.tg.transfer(b.layers[p].split, j, b.mp_bytes[p],
                                             deps=(out[(b.layers[p].split, p)],),
                                             stream=f"to{j}", name=b.layers[p].name,
                                             phase="boundary", iteration=it, microbatch=mb)
                deps.append(moved[p])
        out[(j, i)] = b.compute(j, i, "forward", b.dp_costs, deps=deps, it=it, microbatch=mb)
    bd: dict[tuple[int, int], int] = {}
    for i in reversed(b.st.post):
        bd[(j, i)], ready[(j, i)] = b.backward(j, i, b.dp_costs, (), it, mb)
    scattered: dict[int, int] = {}
    reduced_mp: dict[str, int] = {}
    for i in reversed(b.st.mp):
        r = b.layers[i].split
        deps = []
        for c in b.children(i):
            if c in b.st.post and r != j:
                if i not in scattered:
                    heads = [bd[(j, h)] for h in b.children(i) if h in b.st.post]
                    scattered[i] = b.tg.transfer(j, r, b.mp_bytes[i], deps=heads,
                                                 stream=f"to{r}", name=b.layers[i].name,
                                                 phase="boundary_grad", iteration=it,
                                                 microbatch=mb)
                deps.append(scattered[i])
            elif k > 1 and _forward_exchange(b, c, i) is not None and c not in b.st.post:
                base = b.base(i)
                if base not in reduced_mp:
                    users = [bd[(b.layers[c2].split, c2)] for g in b.st.groups[base]
                             for c2 in b.children(g) if c2 in b.st.mp]
                    reduced_mp[base] = b.collective("reducescatter", k * b.mp_bytes[i], users,
                                                    it=it, name=base, phase="exchange_grad")
                if reduced_mp[base] not in deps:
                    deps.append(reduced_mp[base])
        bd[(r, i)], _ = b.backward(r, i, b.mp_costs, deps, it, mb)
    if k > 1:
        for p in b.st.inputs:
            if is_input(b.layers[p]):
                continue
            users = [bd[(b.layers[c].split, c)] for c in b.children(p) if c in b.st.mp]
            reduced[(j, p)] = b.collective("reduce", b.dp_bytes[p], users, it=it, root=j,
                                           name=b.layers[p].name, phase="boundary_grad",
                                           algorithm="chain")
    for r in b.everyone:
        b.tg.compute(r, b.mp_update_s[r], name="optimizer_mp", phase="update_mp",
                     iteration=it, microbatch=mb)
