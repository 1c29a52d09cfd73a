"""Link technologies and server types, read from ``links.json`` and ``servers.json``.

Catalogs are data: adding a server type is a JSON entry, never a class. Units are converted once,
here: ``bandwidth_GBps`` / ``bandwidth_Gbitps`` become bytes/s and ``latency_us`` seconds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from simulator.errors import SpecError, UnknownNameError
from simulator.units import US, gb_per_s_to_Bps, gbit_per_s_to_Bps
from topologies.schema import KINDS

_HERE = Path(__file__).resolve().parent
GPU_INTERCONNECTS = ("nvlink", "nvswitch", "pcie")


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """One link technology: ``bandwidth_Bps`` per direction (bytes/s) and one-way ``latency_s``.

    ``bandwidth_Bps`` is the rate the technology carries (its line or signalling rate, as
    catalogued); ``payload_efficiency`` the fraction of it left for data after packet headers, flow
    control and the transport's protocol. Flows see :attr:`payload_Bps`, their product.
    """

    name: str
    kind: str
    bandwidth_Bps: float
    latency_s: float
    payload_efficiency: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError("unknown link kind; valid: " + ", ".join(KINDS), source=self.name,
                            field="kind", value=self.kind)
        if not (self.bandwidth_Bps > 0 and math.isfinite(self.bandwidth_Bps)):
            raise SpecError("bandwidth must be positive", source=self.name, field="bandwidth",
                            value=self.bandwidth_Bps)
        if not (self.latency_s >= 0 and math.isfinite(self.latency_s)):
            raise SpecError("latency must be >= 0", source=self.name, field="latency_us",
                            value=self.latency_s)
        eff = self.payload_efficiency
        if isinstance(eff, bool) or not isinstance(eff, (int, float)) or not 0 < eff <= 1:
            raise SpecError("payload efficiency must be in (0, 1]", source=self.name,
                            field="payload_efficiency", value=eff)

    @property
    def payload_Bps(self) -> float:
        """Bytes/s of data a flow can move over the link (line rate x payload efficiency)."""
        return self.bandwidth_Bps * self.payload_efficiency

    def scaled(self, factor: float) -> "LinkSpec":
        """The same technology with ``factor`` times the bandwidth (a bundle, or an oversubscribed
        uplink when ``factor < 1``)."""
        return LinkSpec(name=self.name, kind=self.kind, bandwidth_Bps=self.bandwidth_Bps * factor,
                        latency_s=self.latency_s, payload_efficiency=self.payload_efficiency,
                        source=self.source)


def link_from_mapping(name: str, entry: Mapping[str, Any], *, source: str) -> LinkSpec:
    """Build a :class:`LinkSpec` from a JSON-style mapping (``bandwidth_GBps`` or
    ``bandwidth_Gbitps`` or ``bandwidth_Bps``; ``latency_us`` or ``latency_s``; ``kind``;
    optional ``payload_efficiency``, default 1)."""
    if not isinstance(entry, Mapping):
        raise SpecError("a link must be an object", source=source, field=name, value=entry)
    known = {"kind", "bandwidth_GBps", "bandwidth_Gbitps", "bandwidth_Bps", "latency_us",
             "latency_s", "payload_efficiency", "source"}
    extra = sorted(set(entry) - known)
    if extra:
        raise SpecError("unknown field; valid: " + ", ".join(sorted(known)), source=source,
                        field=f"{name}.{extra[0]}", value=entry[extra[0]])
    bw_fields = [k for k in ("bandwidth_GBps", "bandwidth_Gbitps", "bandwidth_Bps") if k in entry]
    if len(bw_fields) != 1:
        raise SpecError("give exactly one of bandwidth_GBps, bandwidth_Gbitps, bandwidth_Bps",
                        source=source, field=name, value=bw_fields)
    lat_fields = [k for k in ("latency_us", "latency_s") if k in entry]
    if len(lat_fields) != 1:
        raise SpecError("give exactly one of latency_us, latency_s", source=source, field=name,
                        value=lat_fields)
    raw_bw, raw_lat = entry[bw_fields[0]], entry[lat_fields[0]]
    for fname, raw in ((bw_fields[0], raw_bw), (lat_fields[0], raw_lat)):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise SpecError("must be a number", source=source, field=f"{name}.{fname}", value=raw)
    bandwidth = {"bandwidth_GBps": gb_per_s_to_Bps, "bandwidth_Gbitps": gbit_per_s_to_Bps,
                 "bandwidth_Bps": float}[bw_fields[0]](raw_bw)
    latency = raw_lat * US if lat_fields[0] == "latency_us" else float(raw_lat)
    try:
        return LinkSpec(name=name, kind=entry.get("kind", "link"), bandwidth_Bps=bandwidth,
                        latency_s=latency,
                        payload_efficiency=entry.get("payload_efficiency", 1.0),
                        source=str(entry.get("source", "")))
    except SpecError as exc:
        raise SpecError(exc.problem, source=source, field=f"{name}.{exc.field}",
                        value=exc.value) from None


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """One server type: its GPUs, their PCIe tree and GPU-to-GPU interconnect, and its NICs.

    ``nvlink_pairs`` holds ``(i, j, links)`` triples for ``gpu_interconnect="nvlink"``; with
    ``"nvswitch"`` every GPU has ``nvlinks_per_gpu`` links into one non-blocking switch.
    ``gpudirect_rdma=False`` marks servers whose NICs cannot read GPU memory: transfers to other
    servers are staged through host memory (``simulator.network.staging``).

    ``gpu_nics`` gives, per GPU, the local number of the NIC it uses (its nearest, as NCCL binds
    it); empty means the builder's rule (:func:`default_gpu_nics`). ``nvls_efficiency`` (NVSwitch
    servers) says the switch can reduce and multicast (NVLink SHARP) and at what fraction of the
    link's payload rate its multimem traffic moves; ``None``: no NVLS.
    """

    name: str
    gpu: str = "CPU"
    gpus: int = 0
    pcie: str = "pcie3_x16"
    gpus_per_pcie_switch: int = 0
    gpu_interconnect: str = "pcie"
    nvlink: str | None = None
    nvlinks_per_gpu: int = 0
    nvlink_pairs: tuple = ()
    nics: int = 1
    nic: str | None = None
    gpudirect_rdma: bool = True
    gpu_nics: tuple = ()
    nvls_efficiency: float | None = None
    source: str = ""
    links: Mapping[str, LinkSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        def bad(problem, fname, value):
            return SpecError(problem, source=self.name, field=fname, value=value)

        for fname in ("gpus", "gpus_per_pcie_switch", "nvlinks_per_gpu", "nics"):
            value = getattr(self, fname)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad("must be an integer >= 0", fname, value)
        if not isinstance(self.gpudirect_rdma, bool):
            raise bad("must be true or false", "gpudirect_rdma", self.gpudirect_rdma)
        if self.gpus == 0 and self.nics == 0:
            raise bad("a server needs GPUs or a NIC", "nics", 0)
        if self.gpu_interconnect not in GPU_INTERCONNECTS:
            raise bad("unknown GPU interconnect; valid: " + ", ".join(GPU_INTERCONNECTS),
                      "gpu_interconnect", self.gpu_interconnect)
        for fname in ("pcie", "nvlink", "nic"):
            value = getattr(self, fname)
            if value is not None and value not in self.links:
                raise UnknownNameError("link", value, list(self.links), source=self.name,
                                       field=fname)
        if self.gpu_interconnect != "pcie":
            if self.nvlink is None:
                raise bad("NVLink servers need an nvlink link type", "nvlink", None)
            if self.nvlinks_per_gpu < 1:
                raise bad("NVLink servers need nvlinks_per_gpu >= 1", "nvlinks_per_gpu",
                          self.nvlinks_per_gpu)
        used = [0] * self.gpus
        for pair in self.nvlink_pairs:
            if (len(pair) != 3 or not all(isinstance(x, int) for x in pair)
                    or not (0 <= pair[0] < self.gpus and 0 <= pair[1] < self.gpus)
                    or pair[0] == pair[1] or pair[2] < 1):
                raise bad("each NVLink pair is [gpu_i, gpu_j, links] with i != j", "nvlink_pairs",
                          list(pair))
            used[pair[0]] += pair[2]
            used[pair[1]] += pair[2]
        if self.nvlink_pairs and self.gpu_interconnect != "nvlink":
            raise bad("nvlink_pairs only apply to gpu_interconnect 'nvlink'", "nvlink_pairs",
                      self.gpu_interconnect)
        if self.gpu_interconnect == "nvlink" and max(used, default=0) > self.nvlinks_per_gpu:
            raise bad(f"a GPU uses more than nvlinks_per_gpu={self.nvlinks_per_gpu} links",
                      "nvlink_pairs", max(used))
        nics = tuple(self.gpu_nics)
        if nics:
            if len(nics) != self.gpus:
                raise bad(f"needs one NIC number per GPU ({self.gpus})", "gpu_nics", list(nics))
            if any(isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < self.nics
                   for j in nics):
                raise bad(f"each entry is a NIC number in 0..{self.nics - 1}", "gpu_nics",
                          list(nics))
            object.__setattr__(self, "gpu_nics", nics)
        eff = self.nvls_efficiency
        if eff is not None:
            if self.gpu_interconnect != "nvswitch":
                raise bad("NVLS needs gpu_interconnect 'nvswitch'", "nvls_efficiency", eff)
            if isinstance(eff, bool) or not isinstance(eff, (int, float)) or not 0 < eff <= 1:
                raise bad("must be a fraction in (0, 1]", "nvls_efficiency", eff)

    def nic_of_gpu(self, i: int) -> int | None:
        """The local number of the NIC GPU ``i`` uses, or ``None`` for a server without NICs."""
        if self.nics == 0:
            return None
        if self.gpu_nics:
            return self.gpu_nics[i]
        return default_gpu_nics(self)[i]

    def link(self, name: str) -> LinkSpec:
        return self.links[name]


def default_gpu_nics(spec: "ServerSpec") -> tuple[int, ...]:
    """The nearest NIC of every GPU, for servers that do not list ``gpu_nics``.

    NICs under a GPU's own PCIe switch come first: the GPUs of a switch take its NICs in turn
    (two GPUs and two NICs: one each; two GPUs and one NIC: both share it). Where NICs sit on the
    CPU (fewer NICs than switches) GPU ``i`` takes NIC ``i * nics // gpus``, so the GPUs spread
    evenly over them.
    """
    if spec.nics == 0 or spec.gpus == 0:
        return ()
    per = spec.gpus_per_pcie_switch
    switches = -(-spec.gpus // per) if per else 0
    if not switches or spec.nics < switches:
        return tuple(i * spec.nics // spec.gpus for i in range(spec.gpus))
    under = [[j for j in range(spec.nics) if j * switches // spec.nics == k]
             for k in range(switches)]
    return tuple(under[i // per][(i % per) % len(under[i // per])] for i in range(spec.gpus))


@lru_cache(maxsize=None)
def _read(filename: str) -> dict:
    path = _HERE / filename
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    return {k: v for k, v in data.items() if not k.startswith("_")}


@lru_cache(maxsize=None)
def links() -> dict[str, LinkSpec]:
    """Every link technology in ``links.json``, by name."""
    return {name: link_from_mapping(name, entry, source="topologies/links.json")
            for name, entry in _read("links.json").items()}


def server_from_mapping(name: str, entry: Mapping[str, Any], *, source: str) -> ServerSpec:
    """Build a :class:`ServerSpec` from a JSON-style mapping; link names refer to ``links.json``."""
    if not isinstance(entry, Mapping):
        raise SpecError("a server must be an object", source=source, field=name, value=entry)
    fields = {f for f in ServerSpec.__dataclass_fields__ if f not in ("name", "links")}
    extra = sorted(set(entry) - fields)
    if extra:
        raise SpecError("unknown field; valid: " + ", ".join(sorted(fields)), source=source,
                        field=f"{name}.{extra[0]}", value=entry[extra[0]])
    values = dict(entry)
    if "nvlink_pairs" in values:
        values["nvlink_pairs"] = tuple(tuple(p) if isinstance(p, list) else p
                                       for p in values["nvlink_pairs"])
    if isinstance(values.get("gpu_nics"), list):
        values["gpu_nics"] = tuple(values["gpu_nics"])
    try:
        return ServerSpec(name=name, links=links(), **values)
    except SpecError as exc:
        raise SpecError(exc.problem, source=source, field=f"{name}.{exc.field}",
                        value=exc.value) from None


@lru_cache(maxsize=None)
def servers() -> dict[str, ServerSpec]:
    """Every server type in ``servers.json``, by name."""
    return {name: server_from_mapping(name, entry, source="topologies/servers.json")
            for name, entry in _read("servers.json").items()}


def presets() -> dict[str, dict]:
    """Every named cluster in ``presets.json``: ``{"builder", "params", "description"}``."""
    return _read("presets.json")


def resolve_link(link: str | Mapping | LinkSpec, *, what: str = "link") -> LinkSpec:
    """A catalog name, an inline mapping (as in ``links.json``) or a :class:`LinkSpec`."""
    if isinstance(link, LinkSpec):
        return link
    if isinstance(link, str):
        table = links()
        if link not in table:
            raise UnknownNameError("link", link, list(table), field=what)
        return table[link]
    if isinstance(link, Mapping):
        return link_from_mapping(what, link, source="inline link")
    raise ValueError(f"{what} must be a link name or a mapping (got {link!r})")


def resolve_server(server: str | Mapping | ServerSpec, *, what: str = "server") -> ServerSpec:
    """A catalog name, an inline mapping (as in ``servers.json``) or a :class:`ServerSpec`."""
    if isinstance(server, ServerSpec):
        return server
    if isinstance(server, str):
        table = servers()
        if server not in table:
            raise UnknownNameError("server", server, list(table), field=what)
        return table[server]
    if isinstance(server, Mapping):
        return server_from_mapping("inline", server, source="inline server")
    raise ValueError(f"{what} must be a server name or a mapping (got {server!r})")
