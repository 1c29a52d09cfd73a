"""Walking an ONNX graph into net-format layers, and checking the shapes three ways.

Each node goes to its converter (``CONVERTERS``, by op type) or, when all its inputs are
constants, to its folder (``FOLDERS``). The layers come out in the graph's node order, which ONNX
requires to be topological; graph inputs come first.

After the walk, three checks, each raising :class:`SpecError` on a disagreement:

1. the shapes declared in the file (``value_info`` and the graph outputs) against the importer's;
2. ``onnx.shape_inference`` against the importer's (skipped where ONNX cannot run it);
3. paleosim's loader on the finished spec against the importer's shapes (as NHWC) and parameter
   counts (the elements of the initializers each layer uses as parameters).
"""
from __future__ import annotations

from typing import Any

from simulator.errors import SpecError, UnknownNameError
from workloads.onnx.nodes import (_NO, CONVERTERS, DEFAULT_DOMAINS, FOLDERS, Act, Alias, Const,
                                  LayerRec, NodeCtx, Shape, to_nhwc)


class Builder:
    """One import: the walk's state and the spec it produces."""

    def __init__(self, onnx: Any, model: Any, *, source: str, batch: int | None,
                 name: str) -> None:
        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.source = source
        self.name = name
        self.opset = self._opset()
        self.acts: dict[str, Act] = {}
        self.consts: dict[str, Const] = {}
        self.records: list[LayerRec] = []
        self.producer: dict[str, LayerRec] = {}  # output tensor -> the layer that wrote it
        self.taken: set[str] = set()
        self.consumers: dict[str, int] = {}
        for node in self.graph.node:
            for t in node.input:
                if t:
                    self.consumers[t] = self.consumers.get(t, 0) + 1
        for out in self.graph.output:
            self.consumers[out.name] = self.consumers.get(out.name, 0) + 1
        self.requested_batch = batch
        self.batch = 1       # the batch the walk computes at (the file's batch if concrete)
        self.out_batch = 1   # the batch written in the spec

    def error(self, problem: str, field: str | None = None, value: Any = _NO) -> SpecError:
        return SpecError(problem, source=self.source, field=field, value=value)

    def _opset(self) -> int:
        for entry in self.model.opset_import:
            if entry.domain in DEFAULT_DOMAINS:
                return int(entry.version)
        raise self.error("the model imports no version of the default ONNX operator set",
                         "opset_import")

    def unique(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self.taken:
            k += 1
            name = f"{wanted}_{k}"
        self.taken.add(name)
        return name

    def const_value(self, const: Const, tensor: str, where: NodeCtx | None = None) -> Any:
        if const.value is None:
            try:
                const.value = self.onnx.numpy_helper.to_array(const.proto)
            except Exception as exc:  # external data not loaded, or a malformed tensor
                problem = f"cannot read the value of constant {tensor!r}: {exc}"
                raise (where.error(problem) if where else self.error(problem)) from None
        return const.value

    # inputs -----------------------------------------------------------------------------------
    def read_inputs(self) -> None:
        for init in self.graph.initializer:
            self.consts[init.name] = Const(shape=tuple(int(d) for d in init.dims), proto=init)
        inputs = [vi for vi in self.graph.input if vi.name not in self.consts]
        if not inputs:
            raise self.error("the graph has no input that is not an initializer", "graph.input")
        for i, vi in enumerate(inputs):
            if i > 0 and not self.consumers.get(vi.name):
                continue  # an extra input nothing reads (a label, say)
            dims = declared_dims(vi)
            field_ = f"graph.input {vi.name!r}"
            if not dims:
                raise self.error("an input needs a declared shape of rank >= 1", field_, dims)
            for axis, d in enumerate(dims[1:], start=1):
                if not isinstance(d, int) or d < 1:
                    raise self.error(f"axis {axis} has no fixed size; only the batch (axis 0) "
                                     "may be symbolic", field_, d)
            first = dims[0]
            concrete = isinstance(first, int) and first > 0
            if i == 0:
                self.batch = first if concrete else (self.requested_batch or 1)
                self.out_batch = self.requested_batch or self.batch
            elif concrete and first != self.batch:
                raise self.error(f"the batch (axis 0) differs from the first input's "
                                 f"({self.batch})", field_, first)
            shape = (self.batch, *dims[1:])
            name = self.unique(vi.name)
            rec = LayerRec(name, "Input", [], {"tensor": [self.out_batch,
                                                          *to_nhwc(shape)[1:]]},
                           0, vi.name, "input", vi.name, shape)
            self.records.append(rec)
            self.acts[vi.name] = Act(name, shape, vi.name, "input")

    # the walk ---------------------------------------------------------------------------------
    def walk(self, supported: tuple[str, ...]) -> None:
        for index, node in enumerate(self.graph.node):
            ctx = NodeCtx(self, node, self.unique(node.name or f"{node.op_type}_{index}"))
            op = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
            if not node.output or not node.output[0]:
                raise ctx.error("the node has no output")
            for k, extra in enumerate(node.output[1:], start=1):
                if extra and self.consumers.get(extra):
                    raise ctx.error(f"output {k} is used; only the first output of a node is "
                                    "supported", "outputs", extra)
            data = [t for t in node.input if t]
            if op in FOLDERS and (op in ("Constant", "Shape")
                                  or (data and all(t in self.consts for t in data))):
                self.consts[node.output[0]] = FOLDERS[op](ctx)
                continue
            if op in FOLDERS and op not in CONVERTERS:
                raise ctx.error(f"{op} is read only on constants (shape computations); an input "
                                "here is an activation", "inputs", list(node.input))
            if op not in CONVERTERS:
                raise UnknownNameError("ONNX operator", op, supported, source=self.source,
                                       field=f"node {ctx.name!r}")
            result = CONVERTERS[op](ctx)
            out = node.output[0]
            if isinstance(result, Alias):
                src = self.acts[result.tensor]
                self.acts[out] = Act(src.layer, src.shape, ctx.name, ctx.op)
                continue
            parents = [self.acts[t].layer for t in result.inputs]
            rec = LayerRec(ctx.name, result.type, parents, result.fields, result.params,
                           ctx.name, ctx.op, out, tuple(result.shape), result.onnx_shape)
            self.records.append(rec)
            self.producer[out] = rec
            self.acts[out] = Act(ctx.name, rec.shape, ctx.name, ctx.op)
        if len(self.records) == sum(r.type == "Input" for r in self.records):
            raise self.error("the graph has no layer the importer converts", "graph.node")

    def spec(self) -> dict:
        layers = {r.name: {"type": r.type, "parents": list(r.parents), **r.fields}
                  for r in self.records}
        return {"name": self.name, "layers": layers}

    # checks -----------------------------------------------------------------------------------
    def _mismatch(self, tensor: str, act: Act, what: str, declared: Any) -> SpecError:
        return self.error(f"{what} {_show(declared)} disagrees with the importer's "
                          f"{list(act.shape)} (ONNX layout, batch {self.batch})",
                          f"tensor {tensor!r} (output of node {act.node!r}, {act.op})")

    def check_declared(self) -> None:
        """The file's ``value_info`` and graph outputs against the importer's shapes."""
        for vi in [*self.graph.value_info, *self.graph.output]:
            act = self.acts.get(vi.name)
            dims = declared_dims(vi)
            if act is not None and dims is not None and not _agrees(dims, act.shape):
                raise self._mismatch(vi.name, act, "the declared shape", dims)

    def check_onnx_inference(self) -> int:
        """``onnx.shape_inference`` against the importer, in node order; returns how many layer
        outputs were compared. The first difference stops the check if it is the known
        pre-opset-22 pooling one (everything after it derives from it); any other difference is
        an error."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self._weightless(), data_prop=True)
        except Exception:  # noqa: BLE001  (ONNX cannot infer this model: nothing to compare)
            return 0
        found = {vi.name: declared_dims(vi)
                 for vi in [*inferred.graph.value_info, *inferred.graph.output]}
        compared = 0
        for rec in self.records:
            dims = found.get(rec.output)
            if rec.type == "Input" or dims is None:
                continue
            compared += 1
            if _agrees(dims, rec.shape):
                continue
            if rec.onnx_shape is not None and _agrees(dims, rec.onnx_shape):
                return compared
            raise self._mismatch(rec.output, self.acts[rec.output], "onnx.shape_inference's",
                                 dims)
        return compared

    def _weightless(self) -> Any:
        """The model with its large initializers turned into graph inputs of the same shape:
        the same shapes for ONNX's inference, without serialising the weights (VGG-16: 9 s ->
        under 0.1 s). Small ones stay: data propagation reads shape constants."""
        onnx, graph = self.onnx, self.graph
        light = onnx.ModelProto(ir_version=self.model.ir_version)
        light.opset_import.extend(self.model.opset_import)
        light.functions.extend(self.model.functions)
        g = light.graph
        g.name = graph.name
        for key in ("node", "input", "output", "value_info"):
            getattr(g, key).extend(getattr(graph, key))
        listed = {vi.name for vi in graph.input}
        for init in graph.initializer:
            if len(init.dims) <= 1 and (not init.dims or init.dims[0] <= 64):
                g.initializer.append(init)
            elif init.name not in listed:  # (old models list initializers as inputs too)
                g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type,
                                                                  list(init.dims)))
        return light

    def check_loader(self, spec: dict) -> None:
        """paleosim's loader on ``spec`` agrees with the importer on every shape and count."""
        from workloads.graph import build_graph

        graph = build_graph(spec, batch=self.batch, source=self.source)
        for rec in self.records:
            layer = graph[rec.name]
            where = f"node {rec.node!r} ({rec.op})"
            if layer.output_shape != to_nhwc(rec.shape):
                raise self.error(f"the net format computes {list(layer.output_shape)} (NHWC) "
                                 f"where ONNX gives {list(rec.shape)} (NCHW); this node cannot "
                                 "be expressed exactly", where)
            if rec.type != "Input" and layer.params != rec.params:
                raise self.error(f"the net format counts {layer.params} parameters where the "
                                 f"node's initializers hold {rec.params}", where)



def declared_dims(vi: Any) -> list[Any] | None:
    """A ValueInfo's dims: ints, a symbol's name, or None for an unknown size; None if unranked."""
    ttype = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if ttype is None or not ttype.HasField("shape"):
        return None
    out: list[Any] = []
    for d in ttype.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return out


def _agrees(dims: list[Any], shape: Shape) -> bool:
    return len(dims) == len(shape) and all(
        not isinstance(d, int) or d == s for d, s in zip(dims, shape))


def _show(dims: list[Any]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
