"""Sweep engines: what one point of a sweep runs. A small registry, keyed by name.

``simulate``
    The discrete-event simulator, :func:`simulator.simulate.simulate`: the point's config is a
    simulation config (``workload``, ``system``, ``strategy``; ``docs/CONFIG.md``) and its
    outputs are the result's ``metrics``.
``paleo``
    Paleo's analytical estimate (:func:`simulator.paleo.estimate`, data parallelism) of one
    worker count: milliseconds per point, for very large grids. Outputs are the estimator's row in
    seconds (``time_comp_s``, each scheme's ``*_s`` and Paleo's ``speedup_*``), plus
    ``iteration_s = time_comp_s + <scheme>_s`` and ``samples_per_s`` for the chosen ``scheme``.

An engine validates and normalises a point's config (defaults filled in, so that two spellings of
one configuration share one identity), checks the names it refers to (nets, devices, topologies,
presets) before anything runs, and runs a point with caches that live as long as one task.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from simulator.errors import SpecError, UnknownNameError
from simulator.sweep._plain import canonical_json, plain

SIMULATE_WORKERS = "strategy.workers"


class SimulateEngine:
    """Points are simulation configs; outputs are :class:`~simulator.simulate.SimResult`
    metrics."""

    name = "simulate"
    workers_path = SIMULATE_WORKERS
    uses_seed = True
    #: points per task: simulations take long enough that one point per task balances best
    chunk_hint = 1

    def normalize(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config with every default filled in; ``SpecError`` names the bad field."""
        from simulator.config import config_from_dict
        return plain(config_from_dict(config, source=None).to_dict())

    def check(self, config: dict[str, Any], memo: set) -> None:
        """Fail on names that cannot resolve: the net, the device override, the cost model, the
        topology (its name or file; building it is left to the point)."""
        from simulator.catalog import get_device
        from simulator.costmodel import get_cost_model
        from simulator.specs import system_from_dict

        net = config["workload"]["net"]
        if ("net", net) not in memo:
            _check_net(net, "workload.net")
            memo.add(("net", net))
        system = config["system"]
        for field, value, check in (("system.device", system["device"], get_device),
                                    ("system.cost_model", system["cost_model"], get_cost_model)):
            if value is not None and (field, value) not in memo:
                _with_field(check, value, field)
                memo.add((field, value))
        topology = system_from_dict(system).topology_for(config["strategy"]["workers"])
        if ("topology", topology) not in memo:
            _check_topology(topology)
            memo.add(("topology", topology))

    def workers_of(self, config: dict[str, Any]) -> int:
        return int(config["strategy"]["workers"])

    def run(self, config: dict[str, Any], *, seed: int, state: dict) -> dict[str, Any]:
        from simulator.config import config_from_dict
        from simulator.simulate import simulate
        from simulator.strategies.common import CostCache

        cfg = config_from_dict(config, source=None)
        key = ("costs", cfg.workload, cfg.system.cost_model)
        if key not in state:
            state[key] = CostCache(cfg.workload, cfg.system.cost_model)
        result = simulate(cfg.workload, cfg.system, cfg.strategy, seed=seed,
                          cost_cache=state[key])
        return plain(dict(result.metrics))


#: The Paleo engine's config keys and their defaults (``None`` where the key is required or the
#: estimator's own default applies); see :func:`simulator.paleo.estimate`.
PALEO_KEYS: dict[str, Any] = {
    "net": None, "unknown_layers": "error", "device": None, "network": None,
    "software": None, "ppp_comp": None, "ppp_comm": None, "batch": None, "scaling": "weak",
    "workers": 1, "memory_term": "dec2016", "use_pipeline": False,
    "scheme": "TreeAllReduce", "parallel": "data",
}


class PaleoEngine:
    """Points are :func:`simulator.paleo.estimate` arguments for one worker count."""

    name = "paleo"
    workers_path = "workers"
    uses_seed = False
    #: points per task: an estimate takes well under a millisecond once the net is profiled
    chunk_hint = 256

    def normalize(self, config: dict[str, Any]) -> dict[str, Any]:
        from simulator.catalog import get_paleo_device, get_paleo_network
        from simulator.paleo import MEMORY_TERMS, SCALINGS, SCHEMES, resolve_ppp

        if not isinstance(config, dict):
            raise SpecError("the paleo engine's base is a mapping of estimate() arguments",
                            value=type(config).__name__)
        for key in config:
            if key not in PALEO_KEYS:
                raise UnknownNameError("paleo engine key", str(key), list(PALEO_KEYS), field=key)
        out = {**PALEO_KEYS, **config}
        for key in ("net", "device", "network"):
            if not isinstance(out[key], str) or not out[key]:
                raise SpecError("required: a name", field=key, value=out[key])
        if out["parallel"] != "data":
            raise SpecError("a sweep runs Paleo's data-parallel mode; `paleosim paleo "
                            "--parallel model|hybrid` prints the others", field="parallel",
                            value=out["parallel"])
        out["device"] = _with_field(get_paleo_device, out["device"], "device").name
        out["network"] = _with_field(get_paleo_network, out["network"], "network").name
        for key, valid in (("unknown_layers", ("error", "free")), ("scaling", SCALINGS),
                           ("memory_term", MEMORY_TERMS), ("scheme", SCHEMES)):
            if out[key] not in valid:
                raise UnknownNameError(key.replace("_", " "), str(out[key]), list(valid),
                                       field=key)
        resolve_ppp(software=out["software"], ppp_comp=out["ppp_comp"], ppp_comm=out["ppp_comm"])
        for key, minimum in (("batch", 1), ("workers", 1)):
            value = out[key]
            if value is None and key == "batch":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SpecError(f"must be an integer >= {minimum}", field=key, value=value)
        if not isinstance(out["use_pipeline"], bool):
            raise SpecError("must be true or false", field="use_pipeline",
                            value=out["use_pipeline"])
        return plain(out)

    def check(self, config: dict[str, Any], memo: set) -> None:
        key = ("net", config["net"], config["unknown_layers"])
        if key not in memo:
            from simulator.paleo import PaleoNet
            _check_net(config["net"], "net")
            _with_field(lambda n: PaleoNet(n, unknown_layers=config["unknown_layers"]),
                        config["net"], "net")
            memo.add(key)

    def workers_of(self, config: dict[str, Any]) -> int:
        return int(config["workers"])

    def group_key(self, config: dict[str, Any]) -> str:
        """Points equal but for ``workers`` share one :func:`estimate` call."""
        return canonical_json({k: v for k, v in config.items() if k != "workers"})

    def run(self, config: dict[str, Any], *, seed: int, state: dict) -> dict[str, Any]:
        return self.run_group([config], seed=seed, state=state)[0]

    def run_group(self, configs: list[dict[str, Any]], *, seed: int,
                  state: dict) -> list[dict[str, Any]]:
        """The outputs of points that differ only in ``workers``, from one estimate."""
        from simulator.paleo import PaleoNet, estimate

        config = configs[0]
        key = ("net", config["net"], config["unknown_layers"])
        if key not in state:
            state[key] = PaleoNet(config["net"], unknown_layers=config["unknown_layers"])
        frame = estimate(state[key], device=config["device"], network=config["network"],
                         software=config["software"], ppp_comp=config["ppp_comp"],
                         ppp_comm=config["ppp_comm"], batch=config["batch"],
                         scaling=config["scaling"], workers=[c["workers"] for c in configs],
                         memory_term=config["memory_term"],
                         use_pipeline=config["use_pipeline"])
        scheme = f"{config['scheme']}_s"
        out = []
        for record in frame.to_dict(orient="records"):
            # Paleo's ms as seconds, as simulator.paleo.to_seconds converts them
            row = {(k[:-3] + "_s" if k.endswith("_ms") else k):
                   (plain(v) / 1e3 if k.endswith("_ms") else plain(v))
                   for k, v in record.items()}
            iteration_s = row["time_comp_s"] + row[scheme]
            row["iteration_s"] = iteration_s
            row["samples_per_s"] = row["batch_size"] / iteration_s if iteration_s > 0 else None
            out.append(row)
        return out


ENGINES = {"paleo": PaleoEngine, "simulate": SimulateEngine}


def get_engine(name: str):
    """The engine called ``name``; ``UnknownNameError`` lists the valid ones."""
    if name not in ENGINES:
        raise UnknownNameError("sweep engine", str(name), list(ENGINES), field="engine")
    return ENGINES[name]()


def _with_field(check, value, field: str):
    """``check(value)``, with any ``SpecError`` attributed to the config field ``field``."""
    try:
        return check(value)
    except SpecError as exc:
        if isinstance(exc, UnknownNameError):
            raise UnknownNameError(exc.kind, exc.name, exc.valid, source=exc.source,
                                   field=field) from None
        raise SpecError(exc.problem, source=exc.source, field=field, value=exc.value) from None


def _check_net(net: str, field: str) -> None:
    from workloads.registry import resolve_net, transformer_preset
    if transformer_preset(net) is not None:  # a transformer preset, built on load
        return
    path = _with_field(resolve_net, net, field)
    if not Path(path).is_file():
        raise SpecError("no such net file", field=field, value=net)


_NAME = re.compile(r"\s*([A-Za-z_]\w*)\s*(\(.*\))?\s*\Z", re.S)


def _check_topology(topology: str) -> None:
    """A topology string names a file that exists, or a preset or builder that does."""
    import topologies
    from topologies.io import SUFFIXES

    if topology.endswith(SUFFIXES) or "/" in topology:
        if not Path(topology).is_file():
            raise SpecError("no such topology file", field="system.topology", value=topology)
        return
    match = _NAME.match(topology)
    if match is None:
        raise SpecError("not a topology name, builder call or file", field="system.topology",
                        value=topology)
    if match.group(1) not in topologies.names():
        raise UnknownNameError("topology", match.group(1), topologies.names(),
                               field="system.topology")
