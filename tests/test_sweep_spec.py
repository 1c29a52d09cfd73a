"""Sweep specs: grid expansion order, zip groups, ranges, point identities, and validation that
names the spec file and the field before anything runs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.errors import SpecError, UnknownNameError
from simulator.sweep import SweepSpec, expand, load_sweep, sweep_from_dict

REPO = Path(__file__).resolve().parents[1]

BASE = {"workload": {"net": "alexnet_owt", "batch": 8},
        "system": {"topology": "single_switch(servers={servers}, server='p2.8xlarge')",
                   "gpus_per_server": 8},
        "strategy": {"kind": "data_parallel"}}


def spec(**kwargs) -> SweepSpec:
    return SweepSpec(base=kwargs.pop("base", BASE), source="s.yaml", **kwargs)


def test_cartesian_product_first_axis_slowest():
    plan = expand(spec(grid={"strategy.algorithm": ["ring", "tree"],
                             "strategy.workers": [1, 2, 4]}))
    assert [(p.inputs["strategy.algorithm"], p.inputs["strategy.workers"])
            for p in plan.points] == [("ring", 1), ("ring", 2), ("ring", 4),
                                      ("tree", 1), ("tree", 2), ("tree", 4)]
    assert [p.index for p in plan.points] == list(range(6))
    assert [p.workers for p in plan.points] == [1, 2, 4, 1, 2, 4]
    assert plan.points[4].config["strategy"]["algorithm"] == "tree"
    assert plan.points[4].config["strategy"]["workers"] == 2
    # the rest of the base is untouched, with every default filled in
    assert plan.points[4].config["workload"] == {"net": "alexnet_owt", "batch": 8,
                                                 "dtype": "fp32", "optimizer": "sgd",
                                                 "unknown_layers": "error"}
    assert plan.input_columns == ["strategy.algorithm", "strategy.workers"]


def test_zip_groups_vary_together_at_their_first_axis():
    plan = expand(spec(grid={"strategy.workers": [1, 2, 4],
                             "strategy.algorithm": ["ring", "tree"],
                             "workload.batch": [32, 16, 8]},
                       zip=[["strategy.workers", "workload.batch"]]))
    assert plan.groups == (("strategy.workers", "workload.batch"), ("strategy.algorithm",))
    assert [(p.workers, p.config["workload"]["batch"], p.config["strategy"]["algorithm"])
            for p in plan.points] == [(1, 32, "ring"), (1, 32, "tree"), (2, 16, "ring"),
                                      (2, 16, "tree"), (4, 8, "ring"), (4, 8, "tree")]


def test_ranges_expand_like_paradnn_grids():
    plan = expand(spec(grid={"strategy.workers": {"from": 1, "to": 16, "times": 2}}))
    assert [p.workers for p in plan.points] == [1, 2, 4, 8, 16]


def test_point_ids_depend_on_the_configuration_not_its_spelling():
    implicit = expand(spec(grid={"strategy.workers": [1, 2]}))
    explicit = expand(spec(base={**BASE, "strategy": {"kind": "data_parallel",
                                                      "overlap": True, "algorithm": "ring"}},
                           grid={"strategy.workers": [2, 1]}))
    assert {p.point_id for p in implicit.points} == {p.point_id for p in explicit.points}
    assert implicit.points[0].point_id == explicit.points[1].point_id
    assert len({p.point_id for p in implicit.points}) == 2
    assert all(len(p.point_id) == 16 and int(p.point_id, 16) >= 0 for p in implicit.points)
    # the seed is part of what a simulation runs
    reseeded = expand(spec(grid={"strategy.workers": [1, 2]}, seed=1))
    assert not {p.point_id for p in reseeded.points} & {p.point_id for p in implicit.points}


def test_baseline_worker_count_is_added_only_to_a_plain_workers_axis():
    plan = expand(spec(grid={"strategy.workers": [4, 8]}))
    assert plan.added_baseline and [p.workers for p in plan.points] == [1, 4, 8]
    plan = expand(spec(grid={"strategy.workers": [4, 8]}, baseline=False))
    assert not plan.added_baseline and [p.workers for p in plan.points] == [4, 8]
    zipped = expand(spec(grid={"strategy.workers": [4, 8], "workload.batch": [8, 4]},
                         zip=[["strategy.workers", "workload.batch"]]))
    assert not zipped.added_baseline and [p.workers for p in zipped.points] == [4, 8]


def test_no_grid_is_one_point():
    plan = expand(spec())
    assert len(plan.points) == 1 and plan.points[0].inputs == {}
    assert plan.workers_group is None


def test_paleo_engine_normalises_preset_names_and_defaults():
    base = {"net": "nin", "device": "k20x", "network": "INFINIBAND"}
    plan = expand(spec(engine="paleo", base=base, grid={"workers": [1, 4]}))
    config = plan.points[1].config
    assert config["device"] == "K20X" and config["network"] == "infiniband"
    assert config["workers"] == 4 and config["scheme"] == "TreeAllReduce"
    assert config["scaling"] == "weak" and config["memory_term"] == "dec2016"
    same = expand(spec(engine="paleo", base={**base, "device": "K20X", "scaling": "weak"},
                       grid={"workers": [1, 4]}))
    assert [p.point_id for p in same.points] == [p.point_id for p in plan.points]


@pytest.mark.parametrize("kwargs, field, text", [
    ({"grid": {"strategy.algorithmm": ["ring"]}}, "grid.strategy.algorithmm", "unknown field"),
    ({"grid": {"strategy.algorithm": ["ring", "bogus"]}}, "grid.strategy.algorithm",
     "unknown algorithm 'bogus'"),
    ({"grid": {"strategy.workers": [1, 0]}}, "grid.strategy.workers", "integer >= 1"),
    ({"grid": {"system.topology": ["dgx2h", "no_such_fabric"]}}, "grid.system.topology",
     "unknown topology 'no_such_fabric'"),
    ({"grid": {"workload.net": ["alexnet_owt", "no_such_net"]}}, "grid.workload.net",
     "unknown net 'no_such_net'"),
    ({"grid": {"system.device": ["V100", "H900"]}}, "grid.system.device", "H900"),
    ({"grid": {"workload.batch.x": [1]}}, "grid.workload.batch.x", "not a mapping"),
    ({"grid": {"strategy.workers": [1, 1]}}, "grid.strategy.workers", "distinct"),
    ({"grid": {"strategy.workers": []}}, "grid.strategy.workers", "at least one value"),
    ({"grid": {"strategy.workers": "1,2"}}, "grid.strategy.workers", "list of values"),
    ({"grid": {"strategy.workers": {"from": 4, "to": 2, "times": 2}}},
     "grid.strategy.workers", "from <= to"),
    ({"grid": {"strategy": [{}], "strategy.workers": [1]}}, "grid.strategy", "overlaps"),
    ({"grid": {"strategy.workers": [1, 2], "workload.batch": [8]},
      "zip": [["strategy.workers", "workload.batch"]]}, "zip[0]", "same number of values"),
    ({"grid": {"strategy.workers": [1, 2]}, "zip": [["strategy.workers", "x.y"]]}, "zip[0]",
     "not a grid axis"),
    ({"base": {**BASE, "workload": {"net": "alexnet_owt", "batch": 0}},
      "grid": {"strategy.workers": [1]}}, "base.workload.batch", "integer >= 1"),
    ({"base": {"workload": BASE["workload"], "system": BASE["system"]}}, "base.strategy",
     "missing section"),
    ({"seed": -1}, "seed", "integer >= 0"),
])
def test_bad_specs_name_the_file_and_the_field(kwargs, field, text):
    with pytest.raises(SpecError) as info:
        expand(spec(**kwargs))
    assert info.value.source == "s.yaml"
    assert info.value.field == field
    assert text in str(info.value)


def test_an_error_at_one_point_says_which_point():
    with pytest.raises(SpecError) as info:
        expand(spec(grid={"strategy.workers": [1, 2],
                          "strategy.algorithm": ["ring", "bogus"]}))
    assert "(at strategy.workers=1, strategy.algorithm='bogus')" in str(info.value)


def test_unknown_engine_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        spec(engine="analytic")
    assert info.value.valid == ["paleo", "simulate"] and info.value.field == "engine"


def test_paleo_engine_rejects_what_estimate_would():
    for base, field in (({"net": "nin", "device": "K99", "network": "aws"}, "base.device"),
                        ({"net": "nin", "device": "K20", "network": "aws", "parallel": "model"},
                         "base.parallel"),
                        ({"net": "nin", "device": "K20", "network": "aws", "flavour": 1},
                         "base.flavour"),
                        ({"net": "nin", "device": "K20", "network": "aws", "scheme": "ring"},
                         "base.scheme"),
                        ({"device": "K20", "network": "aws"}, "base.net")):
        with pytest.raises(SpecError) as info:
            expand(spec(engine="paleo", base=base))
        assert info.value.field == field, base


def test_two_points_with_one_configuration_are_rejected():
    # Paleo preset names are case-insensitive: two spellings, one configuration
    with pytest.raises(SpecError, match="same configuration") as info:
        expand(spec(engine="paleo", base={"net": "nin", "network": "aws"},
                    grid={"device": ["K20X", "k20x"]}))
    assert info.value.field == "grid"


def test_load_sweep_reads_yaml_and_a_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"strategy.workers": [1, 2]}}))
    loaded = load_sweep(path)
    assert loaded.name == "mine" and loaded.source == str(path)
    assert dict(loaded.base) == BASE and loaded.engine == "simulate"
    assert len(expand(loaded).points) == 2


def test_spec_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grids": {}}))
    with pytest.raises(UnknownNameError, match="unknown sweep spec key 'grids'") as info:
        load_sweep(path)
    assert info.value.source == str(path)
    with pytest.raises(SpecError, match="no such config file"):
        sweep_from_dict({"base": "missing.yaml"}, source="x.yaml", root=tmp_path)


def test_spec_is_frozen_and_keyword_only():
    s = spec(grid={"strategy.workers": [1, 2]})
    with pytest.raises(Exception):
        s.engine = "paleo"
    with pytest.raises(TypeError):
        SweepSpec(BASE)  # noqa - positional on purpose
    with pytest.raises(TypeError):
        s.grid["strategy.workers"] = (4,)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "experiments" / "sweeps")
                                        .glob("*.yaml")))
def test_example_specs_are_valid(name):
    plan = expand(load_sweep(REPO / "experiments" / "sweeps" / name))
    assert len(plan.points) >= 2
    assert len({p.point_id for p in plan.points}) == len(plan.points)
