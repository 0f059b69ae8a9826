"""The generic synthesize -> select -> retrain round (gmmcollapse.pipeline) with a fake domain.

``select`` is checked rule by rule against plain-loop oracles written from the kernel's
conventions (gmmcollapse.feedback); ``run_round`` against a pure-NumPy domain that records every
call: nested prefixes of the inputs, measured phi / psi / p* against hand counts, the result
store (a second call does not retrain), and input validation.
"""

import json
import math
import os

import jax
import numpy as np
import pytest

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse import feedback
from gmmcollapse.pipeline import (
    RULES,
    Strategy,
    StrategyResult,
    concat,
    run_round,
    run_rounds,
    select,
    subset,
)

# ------------------------------------------------------------------------------ select


def _tables(seed=0, n=8, k=3):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(n, k)), 1)  # rounded: some ties
    return {"correct": rng.random((n, k)) < 0.5, "s": scores}


def _best(scores, ok, i):
    """First index of the highest ok score of row i, or None."""
    best = None
    for j in range(scores.shape[1]):
        if ok[i, j] and (best is None or scores[i, j] > scores[i, best]):
            best = j
    return best


def _check_selection(sel, mask):
    """choice / kept of a selection are consistent with ``mask`` (one candidate per row here
    or the highest-scoring one, checked by the callers)."""
    mask = np.asarray(mask)
    np.testing.assert_array_equal(np.asarray(sel.mask), mask)
    np.testing.assert_array_equal(np.asarray(sel.kept), mask.any(axis=1))
    choice = np.asarray(sel.choice)
    assert np.all((choice == -1) == ~mask.any(axis=1))
    for i in np.flatnonzero(mask.any(axis=1)):
        assert mask[i, choice[i]]


def test_rules_constant():
    assert set(RULES) == {
        "all",
        "prune",
        "best_of_k",
        "top_fraction",
        "random_fraction",
        "noisy_oracle",
    }


def test_select_all():
    t = _tables()
    sel = select(Strategy("a", "all"), t)
    _check_selection(sel, np.ones((8, 3), bool))
    np.testing.assert_array_equal(sel.choice, 0)


@pytest.mark.parametrize("tau", [-math.inf, -0.5, 0.0, 0.3, 10.0])
def test_select_prune(tau):
    t = _tables(1)
    sel = select(Strategy("p", "prune", score="s", tau=tau), t)
    mask = t["s"] >= tau
    _check_selection(sel, mask)
    for i in np.flatnonzero(mask.any(axis=1)):  # choice: the best selected candidate
        assert sel.choice[i] == _best(t["s"], mask, i)


@pytest.mark.parametrize("tau", [-math.inf, 0.0, 0.8, 10.0])
def test_select_best_of_k(tau):
    t = _tables(2)
    t["s"][0] = -np.inf  # -inf scores are eligible when tau = -inf
    sel = select(Strategy("b", "best_of_k", score="s", tau=tau), t)
    mask = np.zeros((8, 3), bool)
    for i in range(8):
        b = _best(t["s"], t["s"] >= tau, i)
        if b is not None:
            mask[i, b] = True
    _check_selection(sel, mask)
    if tau == -math.inf:
        assert bool(np.all(sel.kept))  # always one per input
        assert sel.choice[0] == 0  # all -inf: the first one
    if tau == 10.0:
        assert not bool(np.any(sel.kept))


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_select_top_fraction(rate):
    t = _tables(3)
    sel = select(Strategy("t", "top_fraction", score="s", rate=rate), t)
    best = [_best(t["s"], np.ones((8, 3), bool), i) for i in range(8)]
    best_score = np.array([t["s"][i, b] for i, b in enumerate(best)])
    order = sorted(range(8), key=lambda i: (-best_score[i], i))  # ties: lower index first
    keep = order[: math.floor(rate * 8)]
    mask = np.zeros((8, 3), bool)
    for i in keep:
        mask[i, best[i]] = True
    _check_selection(sel, mask)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_select_random_fraction(rate):
    t = _tables(4)
    s = Strategy("r", "random_fraction", rate=rate)
    key = jax.random.key(3)
    sel = select(s, t, key)
    mask = np.asarray(sel.mask)
    assert int(mask.any(axis=1).sum()) == int(rate * 8)  # exactly floor(r n) inputs
    assert not mask[:, 1:].any()  # each kept input contributes candidate 0
    _check_selection(sel, mask)
    again = select(s, t, key)
    np.testing.assert_array_equal(again.mask, sel.mask)  # a function of the key
    ref = feedback.random_fraction(key, np.zeros((8, 3)), rate)
    np.testing.assert_array_equal(ref.mask, sel.mask)
    if rate == 0.5:  # another key picks other inputs (probability 1 - 1/70 for this key pair)
        other = select(s, t, jax.random.key(4))
        assert not np.array_equal(np.asarray(other.mask), mask)


def test_select_noisy_oracle():
    t = _tables(5)
    key = jax.random.key(0)
    oracle = select(Strategy("o", "noisy_oracle", phi=1.0, psi=0.0), t, key)
    _check_selection(oracle, t["correct"])
    inverse = select(Strategy("o", "noisy_oracle", phi=0.0, psi=1.0), t, key)
    _check_selection(inverse, ~t["correct"])
    everything = select(Strategy("o", "noisy_oracle", phi=1.0, psi=1.0), t, key)
    _check_selection(everything, np.ones((8, 3), bool))
    half = select(Strategy("o", "noisy_oracle", phi=0.5, psi=0.25), t, key)
    ref = feedback.noisy_oracle(key, t["correct"], 0.5, 0.25)
    np.testing.assert_array_equal(half.mask, ref.mask)


def test_select_noisy_oracle_rates_monte_carlo():
    rng = np.random.default_rng(0)
    correct = rng.random((4000, 1)) < 0.5
    sel = select(
        Strategy("o", "noisy_oracle", phi=0.8, psi=0.3), {"correct": correct}, jax.random.key(1)
    )
    r = feedback.measure(sel, correct)
    assert float(r.phi) == pytest.approx(0.8, abs=0.03)
    assert float(r.psi) == pytest.approx(0.3, abs=0.03)


def test_select_errors():
    t = _tables()
    with pytest.raises(ValueError, match="missing"):
        select(Strategy("p", "prune", score="missing"), t)
    for rule in ("random_fraction", "noisy_oracle"):
        with pytest.raises(ValueError, match="key"):
            select(Strategy("r", rule), t)


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"rule": "bogus"}, "rule"),
        ({"rule": "prune"}, "score"),
        ({"rule": "best_of_k"}, "score"),
        ({"rule": "top_fraction"}, "score"),
        ({"rule": "prune", "score": "s", "tau": math.nan}, "tau"),
        ({"rule": "top_fraction", "score": "s", "rate": 1.5}, "rate"),
        ({"rule": "noisy_oracle", "phi": -0.1}, "phi"),
        ({"rule": "noisy_oracle", "psi": 2.0}, "psi"),
    ],
)
def test_strategy_validation(kw, name):
    with pytest.raises(ValueError, match=name):
        Strategy("x", **kw)


def test_subset_pytree():
    tree = {"a": np.arange(10), "b": (np.ones((10, 2)), np.zeros((10, 3, 1)))}
    out = subset(tree, 4)
    np.testing.assert_array_equal(out["a"], np.arange(4))
    assert out["b"][0].shape == (4, 2) and out["b"][1].shape == (4, 3, 1)


# --------------------------------------------------------------------------- run_round

N, K = 8, 3
TRUTH = np.arange(N) * 10
# beam candidates: offsets from the truth (0 = correct); rows chosen to cover none / one /
# several correct candidates, correct ones not always first
OFFSETS = np.array(
    [[0, 1, 0], [3, 0, 2], [1, 2, 3], [0, 0, 0], [5, 1, 0], [2, 2, 1], [0, 4, 4], [1, 0, 1]]
)


class FakeDomain:
    """Pure NumPy: the inputs are {"x", "truth"}; a candidate is a number, correct iff it equals
    the truth; score "oracle" is minus the distance, "self" a fixed per-candidate number."""

    def __init__(self):
        self.synthesized = []
        self.trained = []
        self.training_sets = []
        self.evaluated = 0

    def synthesize(self, generator, inputs, pools):
        self.synthesized.append((generator, set(pools)))
        truth = inputs["truth"]
        off = OFFSETS[: len(truth)]  # the first m inputs' candidates
        out = {"beam": truth[:, None] + off, "greedy": truth[:, None] + off[:, :1]}
        return {p: out[p] for p in pools}

    def scores(self, inputs, pool_name, pool):
        truth = inputs["truth"][:, None]
        self_score = -((np.arange(pool.size).reshape(pool.shape) * 7) % 5).astype(float)
        return {
            "correct": pool == truth,
            "oracle": -np.abs(pool - truth).astype(float),
            "self": self_score,
        }

    def training_set(self, inputs, pool, selection):
        mask = np.asarray(selection.mask)
        self.training_sets.append({"inputs": inputs, "pool": pool, "mask": mask})
        i, j = np.nonzero(mask)
        return {"x": inputs["x"][i], "y": pool[i, j]}

    def train(self, data, tag):
        self.trained.append((tag, data))
        return {"tag": tag, "n": len(data["y"]), "mean_y": float(np.mean(data["y"]))}

    def evaluate(self, model, tag=None):
        self.evaluated += 1
        return {"n_train": model["n"], "mean_y": model["mean_y"]}


def _inputs():
    return {"x": np.arange(N * 2, dtype=float).reshape(N, 2), "truth": TRUTH}


STRATS = [
    Strategy("all", "all", pool="beam"),
    Strategy("prune", "prune", pool="beam", score="oracle", tau=-1.0),
    Strategy("oracle_bok", "best_of_k", pool="beam", score="oracle"),
    Strategy("self_bok", "best_of_k", pool="beam", score="self", tau=-2.0),
    Strategy("top", "top_fraction", pool="greedy", score="self", rate=0.5),
    Strategy("rand", "random_fraction", pool="beam", rate=0.5),
    Strategy("noisy", "noisy_oracle", pool="beam", phi=1.0, psi=0.0),
]


def _hand_rates(mask, correct):
    """phi, psi, p, p*, effective noise, n_selected, keep fraction by counting."""
    kc = kw = nc = nw = 0
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if correct[i, j]:
                nc += 1
                kc += bool(mask[i, j])
            else:
                nw += 1
                kw += bool(mask[i, j])
    nan = float("nan")
    phi = kc / nc if nc else nan
    psi = kw / nw if nw else nan
    return {
        "phi": phi,
        "psi": psi,
        "p": nw / (nc + nw),
        "p_star": phi / (phi + psi) if (phi + psi) > 0 else nan,
        "effective_noise": kw / (kc + kw) if kc + kw else nan,
        "n_selected": kc + kw,
        "keep_fraction": (kc + kw) / (nc + nw),
    }


def _expected_mask(strat, m, recorded):
    """The selection each rule must make on the first m inputs (rand: the recorded one, whose
    shape we check separately)."""
    off = OFFSETS[:m] if strat.pool == "beam" else OFFSETS[:m, :1]
    correct = off == 0
    if strat.rule == "all":
        return np.ones(off.shape, bool)
    if strat.rule == "prune":
        return np.abs(off) <= 1
    if strat.rule == "noisy_oracle":
        return correct
    if strat.rule == "best_of_k" and strat.score == "oracle":
        mask = np.zeros(off.shape, bool)
        mask[np.arange(m), np.argmin(np.abs(off), axis=1)] = True  # first of the closest
        return mask
    if strat.rule == "random_fraction":
        assert recorded.any(axis=1).sum() == m // 2 and not recorded[:, 1:].any()
        return recorded
    # "self" scores are computed on the whole pool, then cut to the first m inputs
    full = TRUTH[:, None] + (OFFSETS if strat.pool == "beam" else OFFSETS[:, :1])
    s = FakeDomain().scores({"truth": TRUTH}, strat.pool, full)["self"][:m]
    mask = np.zeros(off.shape, bool)
    if strat.rule == "best_of_k":
        for i in range(m):
            b = _best(s, s >= strat.tau, i)
            if b is not None:
                mask[i, b] = True
        return mask
    assert strat.rule == "top_fraction"
    order = sorted(range(m), key=lambda i: (-s[i].max(), i))
    for i in order[: int(strat.rate * m)]:
        mask[i, int(np.argmax(s[i]))] = True
    return mask


def _assert_rates(got, want):
    assert set(got) == set(want)
    for k, v in want.items():
        if math.isnan(v):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v), k


def test_run_round_nested_prefixes_and_rates():
    domain = FakeDomain()
    lines = []
    results = run_round(
        domain, "gen", _inputs(), STRATS, jax.random.key(0), sizes=[8, 3, 3], log=lines.append
    )
    assert domain.synthesized == [("gen", {"beam", "greedy"})]  # one synthesis, needed pools
    assert [(r.name, r.n_inputs) for r in results] == [(s.name, m) for s in STRATS for m in (3, 8)]
    assert [t for t, _ in domain.trained] == [f"{s.name}@{m}" for s in STRATS for m in (3, 8)]
    assert len(lines) == len(results) and lines[0].startswith("all@3: p*=")
    for res, ts, (tag, data) in zip(results, domain.training_sets, domain.trained, strict=True):
        strat = next(s for s in STRATS if s.name == res.name)
        m = res.n_inputs
        # the size-m run sees exactly the first m inputs and their candidates
        np.testing.assert_array_equal(ts["inputs"]["x"], _inputs()["x"][:m])
        np.testing.assert_array_equal(ts["inputs"]["truth"], TRUTH[:m])
        full = TRUTH[:, None] + (OFFSETS if strat.pool == "beam" else OFFSETS[:, :1])
        np.testing.assert_array_equal(ts["pool"], full[:m])
        mask = ts["mask"]
        np.testing.assert_array_equal(mask, _expected_mask(strat, m, mask), err_msg=tag)
        # the training set is the selected pairs, and the metrics come from its model
        assert res.metrics == {"n_train": int(mask.sum()), "mean_y": float(np.mean(full[:m][mask]))}
        assert res.model is None  # keep_models=False
        _assert_rates(res.rates, _hand_rates(mask, full[:m] == TRUTH[:m, None]))


def test_run_round_rates_literal():
    """A few rates worked out by hand on OFFSETS (first 3 rows: 3 correct of 9 candidates)."""
    res = run_round(FakeDomain(), None, _inputs(), STRATS[:3], jax.random.key(0), sizes=[3])
    by = {r.name: r.rates for r in res}
    assert (
        by["all"]["phi"] == 1 and by["all"]["psi"] == 1 and by["all"]["p"] == pytest.approx(6 / 9)
    )
    assert by["all"]["p_star"] == 0.5
    # prune |offset| <= 1 keeps 0 1 0 | 0 | 1: all 3 correct and 2 of 6 wrong
    assert by["prune"]["phi"] == 1 and by["prune"]["psi"] == pytest.approx(2 / 6)
    assert by["prune"]["p_star"] == pytest.approx(1 / (1 + 1 / 3))
    assert by["prune"]["effective_noise"] == pytest.approx(2 / 5)
    # oracle best-of-k keeps one per input: 2 correct (rows 0, 1), 1 wrong (row 2)
    assert by["oracle_bok"]["phi"] == pytest.approx(2 / 3)
    assert by["oracle_bok"]["psi"] == pytest.approx(1 / 6)
    assert by["oracle_bok"]["n_selected"] == 3 and by["oracle_bok"][
        "keep_fraction"
    ] == pytest.approx(1 / 3)


def test_run_round_store_skips_training(tmp_path):
    key = jax.random.key(1)
    first_domain = FakeDomain()
    first = run_round(first_domain, None, _inputs(), STRATS, key, sizes=[4, 8], store=tmp_path)
    assert len(first_domain.trained) == len(STRATS) * 2
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"{s.name}@{m}.json" for s in STRATS for m in (4, 8))
    saved = json.loads((tmp_path / "prune@4.json").read_text())
    expect = next(r for r in first if r.name == "prune" and r.n_inputs == 4).to_json()
    assert {k: saved[k] for k in expect} == expect and saved["strategy"]["name"] == "prune"

    second_domain = FakeDomain()
    lines = []
    second = run_round(
        second_domain, None, _inputs(), STRATS, key, sizes=[4, 8], store=tmp_path, log=lines.append
    )
    assert second_domain.trained == [] and second_domain.evaluated == 0 and lines == []
    assert [r.to_json() for r in second] == [r.to_json() for r in first]

    # a missing result file is recomputed (an interrupted round resumes)
    (tmp_path / "top@8.json").unlink()
    third_domain = FakeDomain()
    third = run_round(third_domain, None, _inputs(), STRATS, key, sizes=[4, 8], store=tmp_path)
    assert [t for t, _ in third_domain.trained] == ["top@8"]
    assert [r.to_json() for r in third] == [r.to_json() for r in first]

    # keep_models retrains (and returns the models) even when the results exist
    kept_domain = FakeDomain()
    kept = run_round(
        kept_domain, None, _inputs(), STRATS[:2], key, sizes=[4], store=tmp_path, keep_models=True
    )
    assert [t for t, _ in kept_domain.trained] == ["all@4", "prune@4"]
    assert [r.model["tag"] for r in kept] == ["all@4", "prune@4"]


def test_run_round_nothing_selected(tmp_path):
    domain = FakeDomain()
    strats = [Strategy("none", "prune", pool="beam", score="oracle", tau=1.0)]
    (res,) = run_round(domain, None, _inputs(), strats, jax.random.key(0), store=tmp_path)
    assert domain.trained == [] and res.metrics == {"error": "nothing selected"}
    assert res.rates["n_selected"] == 0 and res.rates["phi"] == 0 and res.rates["psi"] == 0
    assert math.isnan(res.rates["p_star"])
    again = run_round(FakeDomain(), None, _inputs(), strats, jax.random.key(0), store=tmp_path)
    assert again[0].metrics == {"error": "nothing selected"} and math.isnan(
        again[0].rates["p_star"]
    )


def test_run_round_default_size_and_candidates():
    domain = FakeDomain()
    cands = FakeDomain().synthesize(None, _inputs(), {"beam"})
    res = run_round(domain, None, _inputs(), STRATS[:1], jax.random.key(0), candidates=cands)
    assert domain.synthesized == []  # precomputed candidates are used as given
    assert [(r.name, r.n_inputs) for r in res] == [("all", N)]
    assert isinstance(res[0], StrategyResult)


def test_run_round_random_strategies_depend_on_key():
    strats = [Strategy("rand", "random_fraction", pool="beam", rate=0.5)]
    masks = []
    for seed in (0, 0, 1):
        domain = FakeDomain()
        run_round(domain, None, _inputs(), strats, jax.random.key(seed))
        masks.append(domain.training_sets[0]["mask"])
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])


def test_run_round_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unique"):
        run_round(FakeDomain(), None, _inputs(), [STRATS[0], STRATS[0]], key)
    for sizes in ([0], [N + 1], [3, -1]):
        with pytest.raises(ValueError, match="sizes"):
            run_round(FakeDomain(), None, _inputs(), STRATS, key, sizes=sizes)
    with pytest.raises(ValueError, match="greedy"):
        cands = FakeDomain().synthesize(None, _inputs(), {"beam"})
        run_round(FakeDomain(), None, _inputs(), STRATS, key, candidates=cands)
    with pytest.raises(ValueError, match="nope"):
        strat = Strategy("x", "prune", pool="beam", score="nope")
        run_round(FakeDomain(), None, _inputs(), [strat], key)


def test_run_round_rejects_fractional_sizes():
    with pytest.raises(ValueError, match="sizes"):
        run_round(FakeDomain(), None, _inputs(), STRATS[:1], jax.random.key(0), sizes=[2.5])


def test_run_round_store_redoes_a_changed_strategy(tmp_path):
    """A stored result is reused only for the same strategy: changing a parameter under the
    same name (or its selection) retrains instead of returning the stale result."""
    key = jax.random.key(2)
    run_round(FakeDomain(), None, _inputs(), [STRATS[1]], key, store=tmp_path)
    same = FakeDomain()
    run_round(same, None, _inputs(), [STRATS[1]], key, store=tmp_path)
    assert same.trained == []
    changed = FakeDomain()
    strat = Strategy("prune", "prune", pool="beam", score="oracle", tau=-0.5)
    run_round(changed, None, _inputs(), [strat], key, store=tmp_path)
    assert len(changed.trained) == 1


def test_random_strategies_do_not_depend_on_list_order():
    key = jax.random.key(3)
    a = run_round(FakeDomain(), None, _inputs(), [STRATS[5], STRATS[6]], key)
    b = run_round(FakeDomain(), None, _inputs(), [STRATS[6], STRATS[5]], key)
    by_name = {r.name: r.rates for r in b}
    for r in a:
        assert r.rates == by_name[r.name]


# --------------------------------------------------------------------------- run_rounds


def _selection(strat, inputs, key, r):
    """The training set a strategy selects from ``inputs`` in round ``r`` (by hand: the
    FakeDomain's candidates do not depend on the generator)."""
    dom = FakeDomain()
    pool = dom.synthesize(None, inputs, {strat.pool})[strat.pool]
    k = key if r == 0 else jax.random.fold_in(key, r)
    res = run_round(dom, None, inputs, [strat], k, keep_data=True)
    return res[0].data, pool


@pytest.mark.parametrize("data", ["replace", "accumulate"])
@pytest.mark.parametrize("with_real", [False, True])
def test_run_rounds_trains_on_what_the_mode_says(data, with_real, tmp_path):
    key = jax.random.key(3)
    strats = [STRATS[1], STRATS[5]]  # a deterministic and a random rule
    real = {"x": np.full((2, 2), -1.0), "y": np.array([-5, -6])} if with_real else None
    dom = FakeDomain()
    rounds = 3
    out = run_rounds(dom, "gen0", lambda r: _inputs(), strats, key, rounds=rounds, data=data, real=real,
                     store=tmp_path)  # fmt: skip
    assert len(out) == rounds and all(set(r) == {s.name for s in strats} for r in out)
    # round r >= 1 synthesizes with the strategy's own model from round r - 1
    gens = [g for g, _ in dom.synthesized]
    assert gens[0] == "gen0"
    assert [g["tag"] for g in gens[1:]] == [
        "prune@8", "rand@8", "round2/prune@8", "round2/rand@8"
    ]  # fmt: skip
    trained = dict(dom.trained)
    for s in strats:
        sets = [_selection(s, _inputs(), key, r)[0] for r in range(rounds)]
        for r in range(rounds):
            tag = f"{s.name}@8" if r == 0 else f"round{r + 1}/{s.name}@8"
            parts = ([real] if with_real else []) + (
                sets[: r + 1] if data == "accumulate" else [sets[r]]
            )
            want = concat(*parts)
            np.testing.assert_array_equal(trained[tag]["y"], want["y"], err_msg=tag)
            np.testing.assert_array_equal(trained[tag]["x"], want["x"], err_msg=tag)
            assert out[r][s.name].model is None and out[r][s.name].data is None
    # resumed: nothing is retrained in the last round (earlier rounds reload their models)
    again = FakeDomain()
    out2 = run_rounds(again, "gen0", _inputs(), strats, key, rounds=rounds, data=data, real=real,
                      store=tmp_path)  # fmt: skip
    assert not [t for t, _ in again.trained if t.startswith(f"round{rounds}/")]
    assert [{k: v.metrics for k, v in r.items()} for r in out2] == [
        {k: v.metrics for k, v in r.items()} for r in out
    ]


def test_run_rounds_rejects_bad_arguments():
    with pytest.raises(ValueError, match="data must be one of"):
        run_rounds(FakeDomain(), None, _inputs(), STRATS[:1], jax.random.key(0), data="mix")
    with pytest.raises(ValueError, match="rounds"):
        run_rounds(FakeDomain(), None, _inputs(), STRATS[:1], jax.random.key(0), rounds=0)


def test_concat_skips_none():
    a = {"y": np.array([1, 2])}
    assert concat(None, a) is a and concat() is None
    np.testing.assert_array_equal(concat(a, None, a)["y"], [1, 2, 1, 2])


def test_run_rounds_sizes_select_among_the_first_m_inputs(tmp_path):
    """``sizes`` gives each strategy its own number of inputs in every round: the same results
    as run_round on the first m inputs, stored apart from the full-size results."""
    key = jax.random.key(5)
    strats = [STRATS[4], STRATS[5], STRATS[1]]  # top (0.5), rand (0.5), prune
    sizes = {"top": 4, "rand": 6}  # prune: all 8
    dom = FakeDomain()
    out = run_rounds(dom, "gen0", _inputs(), strats, key, rounds=2, sizes=sizes,
                     store=tmp_path)  # fmt: skip
    assert [list(r) for r in out] == [["top", "rand", "prune"]] * 2  # the strategies' order
    for r in range(2):
        for s in strats:
            m = sizes.get(s.name, N)
            got = out[r][s.name]
            assert got.n_inputs == m, (r, s.name)
            sub = {k: v[:m] for k, v in _inputs().items()}
            want = _selection(s, sub, key, r)[0]
            tag = f"{s.name}@{m}" if r == 0 else f"round2/{s.name}@{m}"
            np.testing.assert_array_equal(dict(dom.trained)[tag]["y"], want["y"], err_msg=tag)
            if s.rule != "prune":
                assert got.rates["n_selected"] == m // 2
    # round 1 synthesizes once for every size; round 2 on each strategy's m inputs only
    assert len(dom.synthesized) == 1 + len(strats) and dom.synthesized[0] == (
        "gen0",
        {"greedy", "beam"},
    )
    assert [len(t["inputs"]["x"]) for t in dom.training_sets[-3:]] == [4, 6, 8]
    assert os.path.exists(tmp_path / "strategies" / "top@4.json")
    assert os.path.exists(tmp_path / "round2" / "rand" / "rand@6.json")
    # the same store holds the full-size results beside them; nothing is mixed up
    full = run_rounds(FakeDomain(), "gen0", _inputs(), strats, key, store=tmp_path)
    assert {k: v.n_inputs for k, v in full[0].items()} == {"top": N, "rand": N, "prune": N}
    assert full[0]["top"].rates["n_selected"] == N // 2


def test_run_rounds_sizes_rejects_unknown_strategies_and_bad_sizes():
    with pytest.raises(ValueError, match="sizes names strategies that are not run"):
        run_rounds(FakeDomain(), None, _inputs(), STRATS[:1], jax.random.key(0), sizes={"x": 2})
    with pytest.raises(ValueError, match="sizes"):
        run_rounds(FakeDomain(), None, _inputs(), STRATS[:1], jax.random.key(0),
                   sizes={"all": N + 1})  # fmt: skip
