"""The experiment registry's shared pieces and the GMM figure experiments' face: config
presets (frozen dataclasses), ``describe``, ``run``, ``report``; ``--set`` parsing."""

import dataclasses
import os

import numpy as np
import pytest

from gmmcollapse.experiments import data_overrides, figure_names, parse_overrides
from gmmcollapse.experiments.gmm import EXPERIMENTS, SCALES, make_config, run_experiment
from gmmcollapse.gmm.sweep import load_results

# the scale tuples of the experiments before their configs were dataclasses
OLD_PRESETS = {
    "phase": {"smoke": (11, 9, 9), "quick": (201, 161, 61), "paper": (801, 641, 121)},
    "transition": {
        "smoke": (16, 2, 3, (1.0, 4.0)),
        "quick": (200, 16, 13, (0.5, 2.0, 8.0, 32.0)),
        "paper": (1000, 64, 41, (0.25, 1.0, 4.0, 16.0, 64.0, 256.0)),
    },
    "datasize": {
        "smoke": (16, 2, 2.5, 2, 9), "quick": (100, 8, 4.5, 11, 81),
        "paper": (1000, 32, 6.0, 25, 161),
    },
    "rounds": {
        "smoke": (16, 2, 3, 64, 32), "quick": (100, 16, 8, 1000, 200),
        "paper": (500, 64, 20, 10000, 1000),
    },
    "linear_phase": {
        "smoke": (9, 7, 16, 2, 256, 3), "quick": (121, 81, 50, 8, 20000, 5),
        "paper": (361, 241, 200, 32, 200000, 9),
    },
    "best_size": {
        "smoke": (7, 5, 9, 4, 16, 2, 4), "quick": (61, 49, 81, 41, 100, 64, 13),
        "paper": (181, 145, 161, 81, 400, 256, 25),
    },
}  # fmt: skip


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_presets_are_frozen_configs_with_the_old_values(name):
    exp = EXPERIMENTS[name]
    assert tuple(exp.scales) == SCALES
    for scale, cfg in exp.scales.items():
        assert cfg.scale == scale
        values = tuple(getattr(cfg, f.name) for f in dataclasses.fields(cfg))[1:]
        assert values == OLD_PRESETS[name][scale]
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.scale = "x"


def test_config_overrides_and_errors():
    cfg = make_config("rounds", "smoke", seeds=5)
    assert cfg.seeds == 5 and cfg.rounds == 3 and cfg.scale == "smoke"
    with pytest.raises(ValueError, match="unknown rounds config field"):
        make_config("rounds", "smoke", nope=1)
    with pytest.raises(ValueError, match="scale must be one of smoke, quick, paper"):
        make_config("rounds", "huge")
    with pytest.raises(ValueError, match="experiment must be one of"):
        make_config("nope")


def test_describe_lists_every_result_file():
    exp = EXPERIMENTS["datasize"]
    lines = exp.describe(exp.config("smoke")).splitlines()
    assert lines[0].startswith("gmm datasize smoke: ")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "gmm_datasize_flip.npz", "gmm_datasize_flip_theory.npz", "gmm_datasize_linear.npz",
        "gmm_datasize_linear_theory.npz", "gmm_datasize_clean.npz",
        "gmm_datasize_clean_theory.npz",
    ]  # fmt: skip
    assert "case x n grid 3x2 = 6 points x 2 seeds = 12 runs" in lines[1]
    assert lines[2].endswith("theory only")


def test_run_and_report_the_phase_experiment(tmp_path):
    exp = EXPERIMENTS["phase"]
    cfg = exp.config("smoke", n_p=5)
    paths = exp.run(cfg, str(tmp_path / "a"), progress=False)
    assert [os.path.basename(p) for p in paths] == ["gmm_phase.npz", "gmm_phase_breakdown.npz"]
    res = load_results(paths[0])
    assert res["theory/ridge_accuracy"].shape == (5, 9) and res.meta["scale"] == "smoke"
    report = exp.report(paths).splitlines()
    assert report == [
        "gmm phase:",
        "  gmm_phase.npz: grid 5x9, theory",
        "  gmm_phase_breakdown.npz: grid 4x9, theory",
    ]
    # the preset through run_experiment: the same arrays as the config's run
    (smoke,) = run_experiment("phase", "smoke", str(tmp_path / "b"), progress=False)[:1]
    again = exp.run(exp.config("smoke"), str(tmp_path / "c"), progress=False)[0]
    for k, v in load_results(smoke).data.items():
        np.testing.assert_array_equal(v, load_results(again).data[k])


def test_figure_names_cover_every_domain():
    names = figure_names()
    assert next(iter(names)) == "gmm" and names["gmm"] == list(EXPERIMENTS)
    assert {"eigen", "summarize", "sort"} <= set(names)


@dataclasses.dataclass(frozen=True)
class _Inner:
    width: int = 8
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class _Config:
    scale: str = "quick"
    rounds: int = 1
    rates: tuple[float, ...] = (0.5,)
    data: str | None = None
    flag: bool = False
    model: _Inner = dataclasses.field(default_factory=_Inner)


def test_parse_overrides_types_embedded_fields_and_aliases():
    got = parse_overrides(
        ["rounds=2", "rates=0.25, 0.5", "data=none", "flag=yes", "model.width=64", "lr=0.01"],
        _Config,
        {"lr": "model.lr"},
    )
    assert got == {
        "rounds": 2, "rates": (0.25, 0.5), "data": None, "flag": True, "model.width": 64,
        "model.lr": 0.01,
    }  # fmt: skip
    assert parse_overrides(["rounds=3e0"], _Config) == {"rounds": 3}


UNKNOWN = (
    "--set expects KEY=VALUE with KEY one of data, flag, model.lr, model.width, rates, rounds; "
    "got 'nope=1'"
)


@pytest.mark.parametrize(
    "item, message",
    [
        ("nope=1", UNKNOWN),
        ("scale=smoke", "KEY one of"),
        ("rounds", "KEY one of"),
        ("lr=0.1", "KEY one of"),  # an alias only with aliases
        ("rounds=1.5", "--set rounds: cannot read '1.5' as int"),
        ("rounds=inf", "--set rounds: cannot read 'inf' as int"),
        ("flag=maybe", "--set flag: cannot read 'maybe' as bool"),
        ("model.width=x", "--set model.width: cannot read 'x' as int"),
    ],
)
def test_parse_overrides_errors_are_one_line(item, message):
    with pytest.raises(ValueError) as err:
        parse_overrides([item], _Config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_data_overrides():
    assert data_overrides({"rounds": 2}) == {"rounds": 2}
    got = data_overrides({}, "pairs.jsonl")
    assert got == {"data": os.path.abspath("pairs.jsonl"), "format": "auto"}
    assert data_overrides({"format": "xsum"}, "hf:xsum") == {"data": "hf:xsum", "format": "xsum"}
    assert data_overrides({}, "hf:xlsum", "cnndm") == {"data": "hf:xlsum", "format": "cnndm"}
    assert data_overrides({"data": "a.csv"}) == {"data": os.path.abspath("a.csv")}
