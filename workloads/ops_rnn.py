"""Recurrent layers: Elman RNN, LSTM and GRU cells unrolled over a sequence.

One ``Recurrent`` layer (or its shorthands ``RNN``, ``LSTM``, ``GRU``) maps ``[N, T, D]`` to
``[N, T, h]``: one cell of ``h`` hidden units run over the ``T`` steps of a sequence, returning the
hidden state of every step. A cell has ``g`` gates (RNN 1, GRU 3, LSTM 4); each gate is an affine
map of the step's input and the previous hidden state, so the weights are ``g·(D·h + h·h)``.

Bias convention (field ``bias``):

- ``true`` (default): one bias vector per gate, ``g·h`` biases. This is TensorFlow 1's
  ``BasicRNNCell``, ``BasicLSTMCell`` and ``GRUCell`` (each a single ``[D + h, g·h]`` kernel and a
  ``[g·h]`` bias), which ParaDnn uses (Wang, Wei, Brooks, MLSys 2020), and Keras' ``SimpleRNN`` and
  ``LSTM``.
- ``"double"``: separate input and recurrent biases, ``2·g·h``. This is PyTorch's ``nn.RNN``,
  ``nn.LSTM`` and ``nn.GRU`` (``b_ih`` and ``b_hh`` in their documentation), cuDNN's parameter
  layout, and Keras' ``GRU`` with ``reset_after=True`` (the TF 2 default).
- ``false``: no bias.

Work per phase, counted as in :mod:`workloads.ops` (FLOPs are 2 per multiply-add). The input
projection of all ``T`` steps is one GEMM, ``[N·T, D] x [D, g·h]``; the recurrent projection is one
``[N, h] x [h, g·h]`` GEMM per step, which reads the recurrent weights again at every step. That is
how cuDNN schedules an RNN layer (Appleyard, Kocisky, Blunsom, "Optimizing Performance of Recurrent
Neural Networks on GPUs", arXiv:1604.01946, section 3.1). Forward multiply-adds are therefore
``N·T·g·h·(D + h)``, and a training step costs three times that, as for any matrix product.

- ``forward``: both projections plus the cell's elementwise gate arithmetic.
- ``backward_data``: back-propagation through time: the gate derivatives and ``dh_{t-1} =
  dGates·U^T`` at every step (needed even when no gradient leaves the layer, because the weight
  gradients depend on them), plus ``dX = dGates·W^T`` unless the layer is fed by an ``Input``.
- ``backward_filter``: ``dW = X^T·dGates`` and ``dU = H^T·dGates``, each one GEMM over all
  steps, and the bias gradient (a sum over ``N·T``).

The gate arithmetic per hidden unit and step is counted from its operations (sigmoid and tanh at
the conventional ``ACTIVATION_FLOPS`` of :mod:`workloads.ops_misc`); its backward is estimated at
twice the forward. These elementwise terms are a few percent of a layer's FLOPs at any realistic
width; the op class is ``matmul``.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.ops import Inferred, OpContext, Work, phases, register
from workloads.ops_misc import ACTIVATION_FLOPS

CELL_TYPES = ("gru", "lstm", "rnn")
BIAS_CONVENTIONS = {True: 1, "single": 1, "double": 2, False: 0}
GATE_BACKWARD_FACTOR = 2  # backward gate arithmetic per unit, relative to the forward


@dataclass(frozen=True)
class Cell:
    """The arithmetic of one cell type, per hidden unit and step.

    ``gates``: affine maps per unit (the ``g`` of the parameter count); ``sigmoids`` and ``tanhs``:
    nonlinearities evaluated; ``combine``: the multiplies and adds that mix gates and state;
    ``states``: state tensors carried between steps (LSTM carries ``h`` and ``c``).
    """

    gates: int
    sigmoids: int
    tanhs: int
    combine: int
    states: int

    def forward_flops(self, bias_vectors: int) -> int:
        """FLOPs per unit and step: bias adds, nonlinearities and the state update."""
        return (bias_vectors * self.gates + self.sigmoids * ACTIVATION_FLOPS["sigmoid"]
                + self.tanhs * ACTIVATION_FLOPS["tanh"] + self.combine)


# Elman: h' = tanh(W x + U h + b) (Elman 1990).
# LSTM: i, f, o = sigmoid(.), j = tanh(.), c' = f*c + i*j (3 ops), h' = o*tanh(c') (1 op)
#   (Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber, Cummins 2000).
# GRU: r, u = sigmoid(.), r*h (1 op), c = tanh(W x + U (r*h) + b), h' = u*h + (1-u)*c (4 ops)
#   (Cho et al., EMNLP 2014, section 2.3, in TensorFlow's GRUCell form).
CELLS = {
    "rnn": Cell(gates=1, sigmoids=0, tanhs=1, combine=0, states=1),
    "lstm": Cell(gates=4, sigmoids=3, tanhs=2, combine=4, states=2),
    "gru": Cell(gates=3, sigmoids=2, tanhs=1, combine=5, states=1),
}


def recurrent_params(cell: str, input_size: int, hidden: int, bias: bool | str = True) -> int:
    """Trainable parameters of one recurrent layer: ``g·(D·h + h·h) + b·g·h``.

    ``b`` is 1 for ``bias=True`` (TensorFlow 1 / Keras), 2 for ``bias="double"`` (PyTorch,
    cuDNN), 0 for ``bias=False``.

    >>> recurrent_params("lstm", 100, 100)      # TF BasicLSTMCell: kernel [200, 400], bias [400]
    80400
    >>> recurrent_params("gru", 100, 100, "double")
    60600
    """
    g = CELLS[cell].gates
    return g * (input_size * hidden + hidden * hidden) + BIAS_CONVENTIONS[bias] * g * hidden


def _cell(ctx: OpContext, implied: str | None) -> str:
    value = ctx.get("cell") if implied is None else ctx.get("cell", implied)
    if not isinstance(value, str) or value.lower() not in CELLS:
        raise ctx.error("'cell' must be one of: " + ", ".join(CELL_TYPES), "cell", value)
    value = value.lower()
    if implied is not None and value != implied:
        raise ctx.error(f"a {ctx.type} layer has cell '{implied}'", "cell", value)
    return value


def _bias(ctx: OpContext) -> bool | str:
    value = ctx.get("bias", True)
    if isinstance(value, bool) or value in ("single", "double"):
        return value
    raise ctx.error("'bias' must be true (one bias per gate, TensorFlow/Keras), \"double\" "
                    "(input and recurrent biases, PyTorch/cuDNN) or false", "bias", value)


def infer_recurrent(ctx: OpContext, implied: str | None = None) -> Inferred:
    """``[N, T, D]`` -> ``[N, T, hidden]`` with the work described in the module docstring."""
    cell_name = _cell(ctx, implied)
    shape = ctx.input_rank(3)
    hidden = ctx.int_field("hidden")
    bias = _bias(ctx)
    if ctx.splits:
        raise ctx.error("a recurrent layer cannot be split inside a ModelParallel block "
                        "(every step needs the whole hidden state)", "type", ctx.type)
    cell = CELLS[cell_name]
    n, t, d = shape
    h = hidden
    big = cell.gates * h                  # width of the gate pre-activations, g·h
    nb = BIAS_CONVENTIONS[bias]
    rows = n * t                          # (sample, step) pairs
    w_x, w_h = d * big, h * big           # input and recurrent weight elements
    params = w_x + w_h + nb * big
    macs_x, macs_h = rows * d * big, rows * h * big
    gate_elems = rows * h                 # hidden units times steps
    gate_io = rows * (big + cell.states * h)

    fwd_x = Work(2.0 * macs_x, rows * d + w_x + nb * big, rows * big)
    fwd_h = Work(2.0 * macs_h, t * (n * h + w_h), t * n * big)
    fwd_gates = Work(gate_elems * cell.forward_flops(nb), gate_io, gate_io)
    forward = fwd_x + fwd_h + fwd_gates

    bwd_gates = Work(GATE_BACKWARD_FACTOR * gate_elems * cell.forward_flops(nb),
                     gate_io + rows * cell.states * h, gate_io)
    bwd_h = Work(2.0 * macs_h, t * (n * big + w_h), t * n * h)
    backward_data = bwd_gates + bwd_h
    if not ctx.fed_by_input:
        backward_data = backward_data + Work(2.0 * macs_x, rows * big + w_x, rows * d)

    dw_x = Work(2.0 * macs_x, rows * (d + big), w_x)
    dw_h = Work(2.0 * macs_h, rows * (h + big), w_h)
    db = Work(float(rows * big), rows * big, nb * big) if nb else Work()
    backward_filter = dw_x + dw_h + db

    attrs = {"cell": cell_name, "hidden": h, "gates": cell.gates, "input_size": d,
             "seq_len": t, "bias": bias, "bias_vectors": nb}
    return Inferred(output_shape=(n, t, h), params=params, op_class="matmul",
                    macs=macs_x + macs_h, attrs=attrs,
                    work=phases(forward=forward, backward_data=backward_data,
                                backward_filter=backward_filter))


@register("Recurrent")
def recurrent(ctx: OpContext) -> Inferred:
    """A recurrent layer whose ``cell`` field says ``rnn``, ``lstm`` or ``gru``."""
    return infer_recurrent(ctx)


@register("RNN")
def rnn(ctx: OpContext) -> Inferred:
    """Shorthand for ``Recurrent`` with ``cell: rnn`` (Elman, tanh)."""
    return infer_recurrent(ctx, "rnn")


@register("LSTM")
def lstm(ctx: OpContext) -> Inferred:
    """Shorthand for ``Recurrent`` with ``cell: lstm``."""
    return infer_recurrent(ctx, "lstm")


@register("GRU")
def gru(ctx: OpContext) -> Inferred:
    """Shorthand for ``Recurrent`` with ``cell: gru``."""
    return infer_recurrent(ctx, "gru")
