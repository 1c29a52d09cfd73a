"""ParaDnn-style parameterised model generators: fully connected, ResNet and recurrent nets.

ParaDnn (Wang, Wei, Brooks, MLSys 2020, arXiv:1907.10701) benchmarks hardware on thousands of
models generated from a few hyperparameters each. This package builds the same models as
paleosim net specs, and enumerates ParaDnn's sweep grids from YAML files
(``experiments/configs/paradnn_*.yaml``).

>>> from workloads.paradnn import FCConfig, fc_net
>>> from workloads import build_graph
>>> cfg = FCConfig(layers=4, nodes=512, input_width=2000, output_width=1000, batch=64)
>>> cfg.label
'layer_4-node_512-input_2000-output_1000-bs_64'
>>> g = build_graph(fc_net(cfg))
>>> g.total_params == cfg.params == 2_325_480
True

Modules: :mod:`~workloads.paradnn.configs` (the hyperparameters and labels),
:mod:`~workloads.paradnn.models` (the net specs), :mod:`~workloads.paradnn.grid` (sweep grids).
"""
from workloads.paradnn.configs import (CNN_BLOCKS, CONFIG_TYPES, RNN_CELLS, CNNConfig, FCConfig,
                                       RNNConfig, config_type, make_config)
from workloads.paradnn.grid import Grid, expand_axis, grid_configs, load_grid, parse_grid
from workloads.paradnn.models import (cnn_net, config_rows, fc_net, generate, generate_graph, net_name,
                                      rnn_net, summarize, training_flops)

__all__ = ["CNN_BLOCKS", "CONFIG_TYPES", "CNNConfig", "FCConfig", "Grid", "RNN_CELLS",
           "RNNConfig", "cnn_net", "config_rows", "config_type", "expand_axis", "fc_net", "generate",
           "generate_graph", "grid_configs", "load_grid", "make_config", "net_name",
           "parse_grid", "rnn_net", "summarize", "training_flops"]
