"""An accelerator cost model from published per-layer tables: FODLAM, re-implemented.

FODLAM, the "First-Order Deep Learning Accelerator Model" (Adrian Sampson and Mark Buckler,
github.com/cucapra/fodlam, MIT licence), prices a layer with measurements of two research chips:
convolutions on Eyeriss (Chen et al., IEEE JSSC 52(1), 2017, 65 nm) and fully connected layers on
EIE (Han et al., ISCA 2016, 45 nm). This module reproduces its arithmetic from the description in
``shared/data/fodlam/README.md`` (no FODLAM code was read):

- **Eyeriss** layer: ``latency = Total Latency (ms) x 1e-3`` and
  ``energy = latency x Power (mW) x 1e-3``.
- **EIE** layer: the ``Actual Time`` (us) scaled from 45 to 65 nm, ``latency = t x 65/45``, at
  EIE's 0.59 W total power scaled by ``(65/45)**2`` (Dennard scaling): ``energy = latency x
  0.59 x (65/45)**2``.
- **Lookup mode** (config ``{"net": "VGG16" | "AlexNet", "layers": [...]}``): each named layer's
  published cost.
- **MAC-scaled mode** (config ``{"netfile": FILE, "layers": [...]}``): per kind (conv, fc) the
  cost per multiply-add is the sum of the published costs over all 16 VGG-16 and 8 AlexNet
  layers divided by the sum of their per-image MACs; a layer costs that ratio times its MACs.
- Layer names are normalised with ``upper()`` and ``_`` -> ``-`` (``conv1_1`` -> ``CONV1-1``).

Process-node scaling generalises FODLAM's 45 -> 65 nm step: moving a cost from node ``a`` to
node ``b`` multiplies latency by ``b/a`` and power by ``(b/a)**2``, hence energy by ``(b/a)**3``.
The default target, 65 nm, is FODLAM's; other targets are this module's extension.

Units and caveat: joules and seconds. Eyeriss costs are per *batch* of 3 (VGG-16) or 4 (AlexNet)
images while EIE costs are per single frame on compressed weights, and the MAC-scaled ratios
inherit that mixture: treat results as first-order numbers, not per-image costs.

The published tables are read at run time from a FODLAM data folder (``data/``, ``nets/``);
:func:`packaged_per_mac_costs` carries the handful of sums the MAC-scaled mode needs
(``fodlam_constants.json``, with citations), so :meth:`AcceleratorCostModel.packaged` prices
our own :class:`~workloads.graph.LayerGraph` without that folder.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from simulator.errors import SpecError, UnknownNameError

FODLAM_NODE_NM = 65.0
EIE_NODE_NM = 45.0
EYERISS_NODE_NM = 65.0
EIE_POWER_W = 0.59  # EIE total power (Han et al., ISCA 2016), as FODLAM uses it
KINDS = ("conv", "fc")
#: Layer types priced by each kind; other layers (pooling, activations...) cost nothing here.
TYPE_KINDS = {"Convolution": "conv", "Deconvolution": "conv", "InnerProduct": "fc"}
#: The published nets and the FODLAM ``nets/`` file with their per-image MACs.
REFERENCE_NETS = {"AlexNet": "alexnet_deploy.json", "VGG16": "VGG_ILSVRC_16_layers_deploy.json"}
_EYERISS_FILES = {"AlexNet": "eyeriss-alexnet.csv", "VGG16": "eyeriss-vgg16.csv"}
_EIE_FILE = "eie-layers.csv"
RESULT_COLUMNS = ("layer", "kind", "mode", "macs", "energy_J", "latency_s")


def normalise_layer_name(name: str) -> str:
    """FODLAM's layer-name key: upper case, ``_`` -> ``-``."""
    return str(name).upper().replace("_", "-")


def node_factors(from_nm: float, to_nm: float) -> tuple[float, float]:
    """(latency factor, power factor) moving a design from ``from_nm`` to ``to_nm``."""
    if from_nm <= 0 or to_nm <= 0:
        raise SpecError("process nodes must be positive (nm)", field="node_nm",
                        value=(from_nm, to_nm))
    ratio = to_nm / from_nm
    return ratio, ratio * ratio


@dataclass(frozen=True)
class Cost:
    """Energy (J) and latency (s) of one layer, or per multiply-add."""

    energy_J: float
    latency_s: float

    def scaled(self, factor: float) -> "Cost":
        return Cost(self.energy_J * factor, self.latency_s * factor)

    def at_node(self, from_nm: float, to_nm: float) -> "Cost":
        latency_f, power_f = node_factors(from_nm, to_nm)
        return Cost(self.energy_J * latency_f * power_f, self.latency_s * latency_f)


def eie_cost(actual_time_us: float, *, node_nm: float = FODLAM_NODE_NM) -> Cost:
    """An EIE layer's cost at ``node_nm`` from its published Actual Time (us, at 45 nm)."""
    latency_f, power_f = node_factors(EIE_NODE_NM, node_nm)
    latency_s = actual_time_us * 1e-6 * latency_f
    return Cost(latency_s * EIE_POWER_W * power_f, latency_s)


def eyeriss_cost(total_latency_ms: float, power_mW: float, *,
                 node_nm: float = FODLAM_NODE_NM) -> Cost:
    """An Eyeriss layer's cost at ``node_nm`` from its Total Latency (ms) and Power (mW)."""
    latency_s = total_latency_ms * 1e-3
    return Cost(latency_s * power_mW * 1e-3, latency_s).at_node(EYERISS_NODE_NM, node_nm)


@dataclass(frozen=True, kw_only=True)
class PublishedLayer:
    net: str
    layer: str  # normalised name
    kind: str
    cost: Cost  # at 65 nm
    macs: int  # per image, from nets/


@dataclass(frozen=True, kw_only=True, eq=False)
class FodlamData:
    """The published tables (at 65 nm) and the per-image MAC tables of a FODLAM data folder."""

    root: str
    published: Mapping[tuple[str, str], PublishedLayer] = field(repr=False)
    netfiles: Mapping[str, Mapping[str, tuple[str, int]]] = field(repr=False)

    @classmethod
    def read(cls, root: str | Path) -> "FodlamData":
        """Read ``data/*.csv`` and ``nets/*.json`` under ``root``."""
        base = Path(root)
        if not (base / "data").is_dir() or not (base / "nets").is_dir():
            raise SpecError("not a FODLAM data folder (needs data/ and nets/)", source=str(base))
        netfiles = {p.name: _read_netfile(p) for p in sorted((base / "nets").glob("*.json"))}
        costs: dict[tuple[str, str], tuple[str, Cost]] = {}
        for net, layer, cost in _read_eie(base / "data" / _EIE_FILE):
            costs[(net, layer)] = ("fc", cost)
        for net, filename in _EYERISS_FILES.items():
            for layer, cost in _read_eyeriss(base / "data" / filename):
                costs[(net, layer)] = ("conv", cost)
        published = {}
        for (net, layer), (kind, cost) in costs.items():
            macs = netfiles.get(REFERENCE_NETS[net], {}).get(layer)
            if macs is None:
                raise SpecError(f"published layer {net} {layer} has no MAC count",
                                source=str(base / "nets" / REFERENCE_NETS[net]), field=layer)
            published[(net, layer)] = PublishedLayer(net=net, layer=layer, kind=kind, cost=cost,
                                                     macs=macs[1])
        return cls(root=str(base), published=published, netfiles=netfiles)

    def per_mac_costs(self) -> "PerMacCosts":
        """FODLAM's MAC-scaled ratios: per kind, sum of costs / sum of per-image MACs (65 nm)."""
        sums = {kind: [0.0, 0.0, 0] for kind in KINDS}
        for layer in self.published.values():
            acc = sums[layer.kind]
            acc[0] += layer.cost.energy_J
            acc[1] += layer.cost.latency_s
            acc[2] += layer.macs
        return PerMacCosts(
            per_mac={k: Cost(e / m, t / m) for k, (e, t, m) in sums.items()},
            node_nm=FODLAM_NODE_NM, source=f"published tables under {self.root}")


def _read_netfile(path: Path) -> dict[str, tuple[str, int]]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {normalise_layer_name(e["name"]): (str(e["type"]), int(e["macs"]))
                for e in entries if "macs" in e}
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        raise SpecError(f"not a FODLAM net file ({exc!s})", source=str(path)) from None


def _read_csv(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [[cell.strip() for cell in row] for row in csv.reader(fh) if row]
    except FileNotFoundError:
        raise SpecError("no such file", source=str(path)) from None


def _number(text: str, *, path: Path, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SpecError("not a number", source=str(path), field=field, value=text) from None


def _read_eie(path: Path):
    rows = _read_csv(path)
    header = rows[0]
    actual = next((r for r in rows[1:] if r[0] == "Actual Time"), None)
    if actual is None:
        raise SpecError("no 'Actual Time' row", source=str(path))
    for column, value in zip(header[1:], actual[1:]):
        net, _, layer = column.partition(" ")
        if net in REFERENCE_NETS:  # the NeuralTalk columns are not used
            yield net, normalise_layer_name(layer), eie_cost(
                _number(value, path=path, field=column))


def _read_eyeriss(path: Path):
    rows = _read_csv(path)
    header = rows[0]
    try:
        power_col = header.index("Power (mW)")
        latency_col = header.index("Total Latency (ms)")
    except ValueError:
        raise SpecError("needs 'Power (mW)' and 'Total Latency (ms)' columns", source=str(path),
                        field="header", value=header) from None
    for row in rows[1:]:
        if row[0] == "Total":
            continue
        yield normalise_layer_name(row[0]), eyeriss_cost(
            _number(row[latency_col], path=path, field=f"{row[0]}.latency"),
            _number(row[power_col], path=path, field=f"{row[0]}.power"))


@dataclass(frozen=True, kw_only=True)
class PerMacCosts:
    """Energy and latency per multiply-add for each kind, at ``node_nm``."""

    per_mac: Mapping[str, Cost]
    node_nm: float
    source: str

    def at_node(self, node_nm: float) -> "PerMacCosts":
        return PerMacCosts(per_mac={k: c.at_node(self.node_nm, node_nm)
                                    for k, c in self.per_mac.items()},
                           node_nm=node_nm, source=self.source)


def packaged_per_mac_costs() -> PerMacCosts:
    """The per-MAC costs at 65 nm from the transcribed sums in ``fodlam_constants.json``."""
    text = resources.files("simulator.costmodels").joinpath("fodlam_constants.json") \
        .read_text("utf-8")
    doc = json.loads(text)
    conv, fc = doc["conv"], doc["fc"]
    conv_cost = Cost(conv["energy_J"], conv["latency_s"]).at_node(conv["source_node_nm"],
                                                                   FODLAM_NODE_NM)
    latency_f, power_f = node_factors(fc["source_node_nm"], FODLAM_NODE_NM)
    fc_latency = fc["latency_s_at_source_node"] * latency_f
    fc_cost = Cost(fc_latency * fc["power_W"] * power_f, fc_latency)
    return PerMacCosts(per_mac={"conv": conv_cost.scaled(1.0 / conv["macs"]),
                                "fc": fc_cost.scaled(1.0 / fc["macs"])},
                       node_nm=FODLAM_NODE_NM, source="fodlam_constants.json (package data)")


@dataclass(frozen=True, kw_only=True, eq=False)
class AcceleratorCostModel:
    """Per-layer energy and latency on the FODLAM accelerator at process node ``node_nm``."""

    per_mac: PerMacCosts
    data: FodlamData | None = None
    node_nm: float = FODLAM_NODE_NM
    name: str = "fodlam"

    @classmethod
    def from_data(cls, root: str | Path, *, node_nm: float = FODLAM_NODE_NM
                  ) -> "AcceleratorCostModel":
        """Published tables and per-MAC costs both from the FODLAM folder ``root``."""
        data = FodlamData.read(root)
        return cls(per_mac=data.per_mac_costs(), data=data, node_nm=node_nm)

    @classmethod
    def packaged(cls, *, node_nm: float = FODLAM_NODE_NM) -> "AcceleratorCostModel":
        """MAC-scaled mode only, from the package's transcribed constants."""
        return cls(per_mac=packaged_per_mac_costs(), node_nm=node_nm)

    def published_cost(self, net: str, layer: str, *, source: str | None = None) -> Cost:
        """Lookup mode: the published cost of ``layer`` of ``net`` ("VGG16" or "AlexNet")."""
        return self._published(net, layer, source=source).cost.at_node(FODLAM_NODE_NM,
                                                                        self.node_nm)

    def scaled_cost(self, kind: str, macs: float) -> Cost:
        """MAC-scaled mode: ``macs`` multiply-adds of ``kind`` ("conv" or "fc")."""
        if kind not in KINDS:
            raise UnknownNameError("accelerator layer kind", kind, KINDS)
        return self.per_mac.at_node(self.node_nm).per_mac[kind].scaled(macs)

    def run_config(self, config: Mapping[str, Any], *, source: str = "<config>") -> pd.DataFrame:
        """A FODLAM config: one row per listed layer (:data:`RESULT_COLUMNS`)."""
        if not isinstance(config, Mapping) or ("net" in config) == ("netfile" in config):
            raise SpecError("a config has exactly one of 'net' (lookup) and 'netfile' (scaled)",
                            source=source)
        layers = config.get("layers")
        if not isinstance(layers, list) or not all(isinstance(l, str) for l in layers):
            raise SpecError("'layers' must be a list of layer names", source=source,
                            field="layers", value=layers)
        rows = []
        if "net" in config:
            for name in layers:
                published = self._published(config["net"], name, source=source)
                rows.append(_row(name, published.kind, "lookup", published.macs,
                                 published.cost.at_node(FODLAM_NODE_NM, self.node_nm)))
            return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
        table = self._netfile(config["netfile"], source=source)
        for name in layers:
            entry = table.get(normalise_layer_name(name))
            if entry is None:
                raise UnknownNameError(f"layer with MACs in {config['netfile']}", name,
                                       list(table), source=source, field="layers")
            kind = TYPE_KINDS.get(entry[0])
            if kind is None:
                raise SpecError(f"layer type {entry[0]!r} has no accelerator cost",
                                source=source, field=f"layers.{name}")
            rows.append(_row(name, kind, "scaled", entry[1], self.scaled_cost(kind, entry[1])))
        return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))

    def graph_costs(self, graph) -> pd.DataFrame:
        """MAC-scaled costs of every conv and FC layer of a :class:`LayerGraph` at its batch.

        ``Convolution``/``Deconvolution`` are priced as conv and ``InnerProduct`` as fc, by
        their forward MACs (``layer.macs``, which includes the batch); other layers are omitted.
        """
        rows = []
        for layer in graph.layers:
            kind = TYPE_KINDS.get(layer.type)
            if kind is not None and layer.macs > 0:
                rows.append(_row(layer.name, kind, "scaled", layer.macs,
                                 self.scaled_cost(kind, layer.macs)))
        return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))

    def _need_data(self, what: str, source: str | None = None) -> FodlamData:
        if self.data is None:
            raise SpecError(f"{what} needs the published tables: build the model with "
                            "AcceleratorCostModel.from_data(FODLAM_FOLDER)", source=source,
                            field="data")
        return self.data

    def _published(self, net: str, layer: str, *, source: str | None) -> PublishedLayer:
        data = self._need_data("lookup mode", source)
        if net not in REFERENCE_NETS:
            raise UnknownNameError("published net", net, list(REFERENCE_NETS), source=source,
                                   field="net")
        key = (net, normalise_layer_name(layer))
        if key not in data.published:
            raise UnknownNameError(f"published {net} layer", layer,
                                   [l for n, l in data.published if n == net], source=source,
                                   field="layers")
        return data.published[key]

    def _netfile(self, name: str, *, source: str | None) -> Mapping[str, tuple[str, int]]:
        data = self._need_data("a 'netfile' config", source)
        if name not in data.netfiles:
            raise UnknownNameError("FODLAM net file", name, list(data.netfiles), source=source,
                                   field="netfile")
        return data.netfiles[name]


def _row(layer: str, kind: str, mode: str, macs: int, cost: Cost) -> dict:
    return {"layer": layer, "kind": kind, "mode": mode, "macs": int(macs),
            "energy_J": cost.energy_J, "latency_s": cost.latency_s}


def totals(frame: pd.DataFrame) -> dict[str, float]:
    """Energy and latency per kind and in total, as FODLAM reports them."""
    out = {}
    for kind in KINDS:
        part = frame[frame["kind"] == kind]
        out[f"{kind}_energy_J"] = float(part["energy_J"].sum())
        out[f"{kind}_latency_s"] = float(part["latency_s"].sum())
    out["total_energy_J"] = out["conv_energy_J"] + out["fc_energy_J"]
    out["total_latency_s"] = out["conv_latency_s"] + out["fc_latency_s"]
    return out
