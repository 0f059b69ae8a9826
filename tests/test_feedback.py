"""The feedback-selection kernel: brute-force loop oracles, rates vs Monte Carlo, batching, jit,
properties (hypothesis) and input validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gmmcollapse  # noqa: F401  (enables float64)
from gmmcollapse import feedback as fb

RS = (0.0, 0.125, 0.5, 1.0)  # dyadic, so floor(r n) is exact in floating point


# ----------------------------------------------------------------------------- loop oracles
# Plain Python loops over NumPy arrays, written from the docstrings: higher score is better,
# ties go to the lower candidate / input index, an input is kept when any candidate is.


def _best_eligible(scores, ok, i):
    """Index of the highest-scoring ok candidate of input i (first on ties), or None."""
    best = None
    for j in range(scores.shape[1]):
        if ok[i, j] and (best is None or scores[i, j] > scores[i, best]):
            best = j
    return best


def _from_mask_oracle(mask, scores):
    n = mask.shape[0]
    choice = np.full(n, -1)
    for i in range(n):
        best = _best_eligible(scores, mask, i)
        if best is not None:
            choice[i] = best
    return mask, choice, mask.any(axis=1)


def _prune_oracle(scores, tau, ok):
    mask = np.zeros(scores.shape, bool)
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            mask[i, j] = bool(ok[i, j]) and scores[i, j] >= tau
    return _from_mask_oracle(mask, scores)


def _noisy_oracle_oracle(u, correct, phi, psi, ok):
    """``phi``/``psi`` are per-input sequences; ``u`` the uniforms the kernel draws."""
    mask = np.zeros(correct.shape, bool)
    for i in range(correct.shape[0]):
        for j in range(correct.shape[1]):
            rate = phi[i] if correct[i, j] else psi[i]
            mask[i, j] = bool(ok[i, j]) and u[i, j] < rate
    return _from_mask_oracle(mask, np.zeros(correct.shape))


def _best_of_k_oracle(scores, ok):
    mask = np.zeros(scores.shape, bool)
    for i in range(scores.shape[0]):
        best = _best_eligible(scores, ok, i)
        if best is not None:
            mask[i, best] = True
    return _from_mask_oracle(mask, scores)


def _top_fraction_oracle(scores, r, ok):
    n = scores.shape[0]
    ranked = []
    for i in range(n):
        best = _best_eligible(scores, ok, i)
        if best is not None:
            ranked.append((-scores[i, best], i, best))
    ranked.sort()  # by score descending, then by input index
    mask = np.zeros(scores.shape, bool)
    for _, i, j in ranked[: math.floor(r * n)]:
        mask[i, j] = True
    return _from_mask_oracle(mask, scores)


def _random_fraction_oracle(u, r, ok):
    """Keep the floor(r n) eligible inputs with the smallest uniforms; first eligible candidate."""
    n = ok.shape[0]
    ranked = sorted((u[i], i) for i in range(n) if ok[i].any())
    mask = np.zeros(ok.shape, bool)
    for _, i in ranked[: math.floor(r * n)]:
        mask[i, int(np.flatnonzero(ok[i])[0])] = True
    return _from_mask_oracle(mask, np.zeros(ok.shape))


def _assert_selection(sel, want):
    mask, choice, kept = want
    np.testing.assert_array_equal(np.asarray(sel.mask), mask)
    np.testing.assert_array_equal(np.asarray(sel.choice), choice)
    np.testing.assert_array_equal(np.asarray(sel.kept), kept)
    assert sel.mask.dtype == bool and sel.kept.dtype == bool and sel.choice.dtype == jnp.int32


def _inputs(seed, n, k, eligible):
    """Integer-valued scores in {-2..2} (many ties) and an eligibility argument.

    ``eligible``: "none" (argument omitted), "cand" ((n, k) mask, some inputs with no eligible
    candidate) or "input" ((n,) per-input mask).
    """
    rng = np.random.default_rng(seed)
    scores = rng.integers(-2, 3, (n, k)).astype(float)
    if eligible == "none":
        return scores, None, np.ones((n, k), bool)
    if eligible == "cand":
        ok = rng.random((n, k)) < 0.6
        ok[0] = False  # at least one input with nothing eligible
        return scores, ok, ok
    ok_in = rng.random(n) < 0.7
    ok_in[0] = False
    return scores, ok_in, np.broadcast_to(ok_in[:, None], (n, k))


ELIGIBLE = ("none", "cand", "input")


# ---------------------------------------------------------------------- strategies vs oracle


@pytest.mark.parametrize("eligible", ELIGIBLE)
@pytest.mark.parametrize("k", [1, 3])
def test_prune_matches_loop(k, eligible):
    for seed in range(3):
        scores, elig, ok = _inputs(seed, 12, k, eligible)
        for tau in (-np.inf, -1.0, 0.0, 0.5, 2.0, 3.0):  # thresholds on and between the scores
            _assert_selection(fb.prune(scores, tau, elig), _prune_oracle(scores, tau, ok))
    # per-candidate thresholds (tau broadcastable to the scores)
    taus = np.random.default_rng(9).integers(-2, 3, (12, k)).astype(float)
    want_mask = (scores >= taus) & ok
    _assert_selection(fb.prune(scores, taus, elig), _from_mask_oracle(want_mask, scores))


@pytest.mark.parametrize("eligible", ELIGIBLE)
@pytest.mark.parametrize("k", [1, 3])
def test_noisy_oracle_matches_loop(key, k, eligible):
    n = 12
    for i, (phi, psi) in enumerate([(1.0, 0.0), (0.7, 0.2), (1.0, 1.0), (0.0, 0.5)]):
        kk = jax.random.fold_in(key, i)
        _, elig, ok = _inputs(i, n, k, eligible)
        correct = np.random.default_rng(100 + i).random((n, k)) < 0.6
        u = np.asarray(jax.random.uniform(kk, (n, k)))  # the kernel draws one uniform each
        sel = fb.noisy_oracle(kk, correct, phi, psi, elig)
        _assert_selection(sel, _noisy_oracle_oracle(u, correct, [phi] * n, [psi] * n, ok))
    # per-input rates as (n, 1) arrays
    phis = np.linspace(0.0, 1.0, n)[:, None]
    psis = np.linspace(1.0, 0.0, n)[:, None]
    sel = fb.noisy_oracle(key, correct, phis, psis, eligible=elig)
    u = np.asarray(jax.random.uniform(key, (n, k)))
    _assert_selection(sel, _noisy_oracle_oracle(u, correct, phis[:, 0], psis[:, 0], ok))


@pytest.mark.parametrize("eligible", ELIGIBLE)
@pytest.mark.parametrize("k", [1, 3])
def test_best_of_k_matches_loop(k, eligible):
    for seed in range(4):
        scores, elig, ok = _inputs(seed, 12, k, eligible)
        _assert_selection(fb.best_of_k(scores, elig), _best_of_k_oracle(scores, ok))


@pytest.mark.parametrize("eligible", ELIGIBLE)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("n", [12, 16])  # floor(0.125 * 12) = 1: r n not an integer
def test_top_fraction_matches_loop(n, k, eligible):
    for seed in range(3):
        scores, elig, ok = _inputs(seed, n, k, eligible)
        for r in RS:
            sel = fb.top_fraction(scores, r, elig)
            _assert_selection(sel, _top_fraction_oracle(scores, r, ok))
            if eligible == "none":  # every input eligible: exactly floor(r n) kept
                assert int(sel.kept.sum()) == math.floor(r * n)


@pytest.mark.parametrize("eligible", ELIGIBLE)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("n", [12, 16])  # floor(0.125 * 12) = 1: r n not an integer
def test_random_fraction_matches_loop(key, n, k, eligible):
    for seed in range(3):
        scores, elig, ok = _inputs(seed, n, k, eligible)
        kk = jax.random.fold_in(key, seed)
        u = np.asarray(jax.random.uniform(kk, (n,)))
        for r in RS:
            sel = fb.random_fraction(kk, scores, r, elig)
            _assert_selection(sel, _random_fraction_oracle(u, r, ok))
            n_ok = int(ok.any(axis=1).sum())
            assert int(sel.kept.sum()) == min(math.floor(r * n), n_ok)


def test_decimal_fractions_count_exactly(key):
    # r n is an integer in decimal but not in binary (0.57 * 100 = 56.99999999999999):
    # the count is the intended integer, not one less
    scores = jnp.arange(100.0)[:, None]
    for r, m in ((0.29, 29), (0.57, 57), (0.58, 58), (0.7, 70)):
        assert int(fb.top_fraction(scores, r).kept.sum()) == m
        assert int(fb.random_fraction(key, scores, r).kept.sum()) == m


def test_random_fraction_is_uniform(key):
    # Each of n = 8 inputs is kept with probability floor(r n) / n = 3/8 (5 standard errors).
    n, reps = 8, 4000
    keys = jax.random.split(key, reps)
    lifted = jax.jit(jax.vmap(fb.random_fraction, in_axes=(0, None, None)))
    kept = lifted(keys, jnp.zeros((n, 2)), 0.375).kept
    np.testing.assert_array_equal(kept.sum(axis=1), 3)
    se = math.sqrt(0.375 * 0.625 / reps)
    np.testing.assert_allclose(kept.mean(axis=0), 0.375, atol=5 * se)


def test_minus_inf_scores_respect_eligibility():
    # Regression: a plain argmax of where(ok, s, -inf) ties -inf scores with ineligible slots.
    s = jnp.full((1, 3), -jnp.inf)
    ok = jnp.array([[False, True, True]])
    best = fb.best_of_k(s, ok)
    np.testing.assert_array_equal(best.mask, [[False, True, False]])
    assert int(best.choice[0]) == 1
    pruned = fb.prune(s, -jnp.inf, ok)
    np.testing.assert_array_equal(pruned.mask, ok)
    assert int(pruned.choice[0]) == 1
    # an input with no eligible candidate never takes the slot of one whose best score is -inf
    scores = np.zeros((12, 1))
    scores[1] = -np.inf
    top = fb.top_fraction(scores, 1 / 12, np.arange(12) == 1)
    np.testing.assert_array_equal(top.kept, np.arange(12) == 1)


def test_noisy_oracle_rates_match_monte_carlo(key):
    # n k = 200k candidates; measured phi, psi within 5 binomial standard errors of the rates.
    n, k, phi, psi = 100_000, 2, 0.8, 0.3
    k_c, k_s = jax.random.split(key)
    correct = jax.random.bernoulli(k_c, 0.6, (n, k))
    rates = fb.measure(fb.noisy_oracle(k_s, correct, phi, psi), correct)
    n_c = float(correct.sum())
    n_w = n * k - n_c
    assert abs(float(rates.phi) - phi) < 5 * math.sqrt(phi * (1 - phi) / n_c)
    assert abs(float(rates.psi) - psi) < 5 * math.sqrt(psi * (1 - psi) / n_w)
    assert abs(float(rates.p) - 0.4) < 5 * math.sqrt(0.24 / (n * k))


def test_noisy_oracle_per_input_rates(key):
    # Class-specific rates as (n, 1) arrays: first half (0.9, 0.1), second half (0.2, 0.6).
    n, k = 100_000, 2
    half = n // 2
    phis = np.r_[np.full(half, 0.9), np.full(half, 0.2)][:, None]
    psis = np.r_[np.full(half, 0.1), np.full(half, 0.6)][:, None]
    k_c, k_s = jax.random.split(key)
    correct = jax.random.bernoulli(k_c, 0.5, (n, k))
    mask = fb.noisy_oracle(k_s, correct, phis, psis).mask
    for rows, phi, psi in ((slice(0, half), 0.9, 0.1), (slice(half, n), 0.2, 0.6)):
        c = correct[rows]
        rates = fb.measure(mask[rows], c)
        n_c = float(c.sum())
        n_w = c.size - n_c
        assert abs(float(rates.phi) - phi) < 5 * math.sqrt(phi * (1 - phi) / n_c)
        assert abs(float(rates.psi) - psi) < 5 * math.sqrt(psi * (1 - psi) / n_w)


# ---------------------------------------------------------------------------------- measure


def test_measure_hand_example():
    correct = np.array([[1, 0, 1], [1, 1, 0]], bool)  # 4 correct, 2 wrong
    mask = np.array([[1, 1, 0], [1, 1, 0]], bool)  # keeps 3 correct, 1 wrong
    r = fb.measure(mask, correct)
    want = {"phi": 3 / 4, "psi": 1 / 2, "p": 2 / 6, "p_star": 0.75 / 1.25, "effective_noise": 1 / 4}
    want.update(n_selected=4.0, keep_fraction=4 / 6)
    for name, value in want.items():
        assert float(getattr(r, name)) == pytest.approx(value, abs=1e-15), name
    # exclude candidate (1, 0) (correct, kept): 3 correct (2 kept), 2 wrong (1 kept)
    valid = np.ones((2, 3), bool)
    valid[1, 0] = False
    r = fb.measure(mask, correct, valid=valid)
    want = {"phi": 2 / 3, "psi": 1 / 2, "p": 2 / 5, "p_star": 4 / 7, "effective_noise": 1 / 3}
    want.update(n_selected=3.0, keep_fraction=3 / 5)
    for name, value in want.items():
        assert float(getattr(r, name)) == pytest.approx(value, abs=1e-15), name
    # a Selection and its bare mask measure the same; a 1-d mask is a k = 1 mask
    sel = fb.from_mask(mask)
    assert fb.measure(sel, correct) == fb.measure(mask, correct)
    r1 = fb.measure(np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0]))
    assert (float(r1.phi), float(r1.psi), float(r1.p_star)) == (0.5, 0.5, 0.5)


def test_measure_nan_without_correct_or_wrong():
    mask = np.array([True, False, True])
    with pytest.warns(RuntimeWarning, match="no wrong candidate"):
        r = fb.measure(mask, np.ones(3, bool))
    assert float(r.phi) == pytest.approx(2 / 3) and np.isnan(r.psi) and float(r.p) == 0.0
    with pytest.warns(RuntimeWarning, match="no correct candidate"):
        r = fb.measure(mask, np.zeros(3, bool))
    assert np.isnan(r.phi) and float(r.psi) == pytest.approx(2 / 3) and float(r.p) == 1.0
    r = fb.measure(np.zeros(3, bool), np.array([1, 0, 1], bool))  # nothing selected
    assert float(r.phi) == 0.0 and float(r.psi) == 0.0
    assert np.isnan(r.p_star) and np.isnan(r.effective_noise) and float(r.keep_fraction) == 0.0
    with pytest.warns(RuntimeWarning, match="no correct and no wrong candidate"):
        r = fb.measure(mask, np.array([1, 0, 1], bool), valid=np.zeros(3, bool))
    assert all(np.isnan(getattr(r, f)) for f in ("phi", "psi", "p", "keep_fraction"))


def test_measure_p_star_and_counts_random():
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random((40, 3)) < 0.5
        correct = rng.random((40, 3)) < 0.7
        valid = rng.random((40, 3)) < 0.9
        r = fb.measure(mask, correct, valid=valid)
        c, w = correct & valid, ~correct & valid
        phi = (mask & c).sum() / c.sum()
        psi = (mask & w).sum() / w.sum()
        np.testing.assert_allclose([r.phi, r.psi], [phi, psi], rtol=1e-14)
        np.testing.assert_allclose(r.p_star, phi / (phi + psi), rtol=1e-14)
        np.testing.assert_allclose(r.p, w.sum() / valid.sum(), rtol=1e-14)
        np.testing.assert_allclose(
            r.effective_noise, (mask & w).sum() / (mask & valid).sum(), rtol=1e-14
        )


# ------------------------------------------------------------------- batching, jit, tracing

B, N, K = 5, 12, 3  # the shape of the oracle tests: their compiled ops are reused


def _batch_inputs(key):
    rng = np.random.default_rng(7)
    scores = rng.integers(-2, 3, (B, N, K)).astype(float)
    ok = rng.random((B, N, K)) < 0.7
    correct = rng.random((B, N, K)) < 0.6
    keys = jax.random.split(key, B)
    return scores, ok, correct, keys


def _assert_batched_equal(batched, singles):
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *singles)
    for got, want in zip(batched, stacked, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_batched_equals_looped(key):
    scores, ok, correct, keys = _batch_inputs(key)
    taus = np.array([-np.inf, -1.0, 0.0, 1.0, 2.0])
    rs = np.array([0.0, 0.125, 0.5, 0.9, 1.0])
    phis = np.array([1.0, 0.8, 0.5, 0.1, 1.0])
    psis = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    cases = {
        "prune": (fb.prune, (scores, taus, ok)),
        "noisy_oracle": (fb.noisy_oracle, (keys, correct, phis, psis, ok)),
        "best_of_k": (fb.best_of_k, (scores, ok)),
        "top_fraction": (fb.top_fraction, (scores, rs, ok)),
        "random_fraction": (fb.random_fraction, (keys, scores, rs, ok)),
    }
    assert set(cases) <= set(fb.__all__)
    for name, (fn, args) in cases.items():
        got = jax.jit(jax.vmap(fn))(*args)
        want = [fn(*(a[b] for a in args)) for b in range(B)]
        _assert_batched_equal(got, want)
        assert got.kept.any() and not got.kept.all(), name  # a non-trivial case
    # a shared argument via in_axes
    got = jax.vmap(fb.prune, in_axes=(0, None, 0))(scores, 0.5, ok)
    _assert_batched_equal(got, [fb.prune(scores[b], 0.5, ok[b]) for b in range(B)])
    # measure, on Selections and on bare masks, with a valid mask
    sels = jax.vmap(fb.top_fraction)(scores, rs, ok)
    got = jax.vmap(fb.measure)(sels, correct, ok)
    _assert_batched_equal(got, [fb.measure(sels.mask[b], correct[b], ok[b]) for b in range(B)])


def test_jit_traced_parameters_do_not_recompile(key):
    scores, ok, correct, _ = _batch_inputs(key)
    scores, ok, correct = scores[0], ok[0], correct[0]
    traces = {}

    def counted(name, fn):
        def wrapped(*args):
            traces[name] = traces.get(name, 0) + 1  # runs at trace time only
            return fn(*args)

        return jax.jit(wrapped)

    # (single-instance function of the swept value, values to sweep)
    cases = {
        "prune": (lambda t: fb.prune(scores, t, ok), [-np.inf, -1.0, 0.0, 2.0]),
        "top_fraction": (lambda r: fb.top_fraction(scores, r, ok), list(RS)),
        "random_fraction": (lambda r: fb.random_fraction(key, scores, r, ok), list(RS)),
    }
    for name, (fn, values) in cases.items():
        jitted = counted(name, fn)
        for v in values:
            _assert_selection(jitted(v), tuple(np.asarray(a) for a in fn(v)))
    oracle_jit = counted(
        "noisy_oracle", lambda k, phi, psi: fb.noisy_oracle(k, correct, phi, psi, ok)
    )
    measure_jit = counted("measure", lambda m, c: fb.measure(m, c))
    for i, (phi, psi) in enumerate([(1.0, 0.0), (0.3, 0.9), (0.5, 0.5)]):
        kk = jax.random.fold_in(key, i)
        got = oracle_jit(kk, phi, psi)
        want = fb.noisy_oracle(kk, correct, phi, psi, ok)
        _assert_selection(got, tuple(np.asarray(a) for a in want))
        np.testing.assert_array_equal(measure_jit(got.mask, correct), fb.measure(want, correct))
    assert traces == dict.fromkeys([*cases, "noisy_oracle", "measure"], 1)


# ------------------------------------------------------------------------- property tests


@st.composite
def instances(draw, ns=(1, 12), ks=(1, 3)):
    # a few shapes only, those of the oracle tests: every new shape compiles each op again
    n = draw(st.sampled_from(ns))
    k = draw(st.sampled_from(ks))
    values = st.sampled_from([-1.0, 0.0, 0.5, 2.0])  # few values: many ties
    scores = np.array(draw(st.lists(values, min_size=n * k, max_size=n * k))).reshape(n, k)
    ok = np.array(draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))).reshape(n, k)
    return scores, ok


@settings(max_examples=30)
@given(instances(), st.integers(0, 2**31 - 1), st.floats(0, 1), st.floats(0, 1), st.data())
def test_masks_are_subsets_of_eligible(inst, seed, phi, psi, data):
    scores, ok = inst
    n = scores.shape[0]
    r = data.draw(st.integers(0, n)) / n
    tau = data.draw(st.sampled_from([-np.inf, -1.0, 0.0, 0.25, 2.0]))
    key = jax.random.key(seed)
    for sel in (
        fb.prune(scores, tau, ok),
        fb.noisy_oracle(key, scores > 0, phi, psi, ok),
        fb.best_of_k(scores, ok),
        fb.top_fraction(scores, r, ok),
        fb.random_fraction(key, scores, r, ok),
    ):
        mask, choice, kept = (np.asarray(a) for a in sel)
        assert not (mask & ~ok).any()
        np.testing.assert_array_equal(kept, mask.any(axis=1))
        np.testing.assert_array_equal(choice >= 0, kept)
        assert all(mask[i, choice[i]] for i in np.flatnonzero(kept))


@settings(max_examples=30)
@given(instances())
def test_best_of_k_one_maximal_per_input(inst):
    scores, ok = inst
    sel = fb.best_of_k(scores, ok)
    mask = np.asarray(sel.mask)
    assert (mask.sum(axis=1) <= 1).all()
    np.testing.assert_array_equal(sel.kept, ok.any(axis=1))
    for i in np.flatnonzero(ok.any(axis=1)):
        j = int(sel.choice[i])
        assert mask[i, j] and ok[i, j]
        assert scores[i, j] == scores[i][ok[i]].max()
        assert j == np.flatnonzero(ok[i] & (scores[i] == scores[i, j]))[0]  # first on ties


@settings(max_examples=30)
@given(instances(), st.data())
def test_top_fraction_kept_count(inst, data):
    scores, ok = inst
    n = scores.shape[0]
    m = data.draw(st.integers(0, n))
    sel = fb.top_fraction(scores, m / n, ok)  # r = m / n: exactly m (if enough eligible)
    assert int(sel.kept.sum()) == min(m, int(ok.any(axis=1).sum()))
    # and the kept inputs are the best: no dropped eligible input beats a kept one
    best = np.where(ok, scores, -np.inf).max(axis=1)
    kept = np.asarray(sel.kept)
    dropped = ok.any(axis=1) & ~kept
    if kept.any() and dropped.any():
        assert best[kept].min() >= best[dropped].max()


@settings(max_examples=30)
@given(
    instances(),
    st.lists(st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 3.0]), min_size=2, max_size=2),
)
def test_prune_monotone_in_tau(inst, taus):
    scores, ok = inst
    lo, hi = sorted(taus)
    loose = np.asarray(fb.prune(scores, lo, ok).mask)
    strict = np.asarray(fb.prune(scores, hi, ok).mask)
    assert not (strict & ~loose).any()


# --------------------------------------------------------------------------- validation


def test_invalid_concrete_inputs_raise(key):
    s = np.zeros((4, 2))
    c = np.ones((4, 2), bool)
    with pytest.raises(ValueError, match=r"^tau must .*nan"):
        fb.prune(s, float("nan"))
    with pytest.raises(ValueError, match=r"^phi must .*1\.5"):
        fb.noisy_oracle(key, c, 1.5, 0.0)
    with pytest.raises(ValueError, match=r"^psi must .*-0\.1"):
        fb.noisy_oracle(key, c, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"^phi must .*\(entry 2\)"):
        fb.noisy_oracle(key, c, np.array([[1.0], [0.5], [np.nan], [0.2]]), 0.0)
    with pytest.raises(ValueError, match=r"^r must .*-0\.1"):
        fb.top_fraction(s, -0.1)
    with pytest.raises(ValueError, match=r"^r must .*-0\.1"):
        fb.random_fraction(key, s, -0.1)
    with pytest.raises(ValueError, match=r"^r must .*1\.5"):
        fb.top_fraction(s, 1.5)


def test_top_fraction_breaks_ties_by_position():
    """The docstring's tie rule: of equal scores the earlier inputs are kept, so a selection
    among the first m inputs keeps the same ones for every m with enough ties."""
    scores = np.array([[0.5], [1.0], [1.0], [0.2], [1.0], [1.0], [1.0], [0.9]])
    for r, want in [(0.25, [1, 2]), (0.5, [1, 2, 4, 5])]:
        sel = fb.top_fraction(scores, r)
        assert np.flatnonzero(np.asarray(sel.kept)).tolist() == want
    # the first 2 tied inputs, whatever the prefix: 4, 6 or all 8 inputs at rates 1/2, 1/3, 1/4
    for m, r in [(4, 0.5), (6, 1 / 3), (8, 0.25)]:
        assert np.flatnonzero(np.asarray(fb.top_fraction(scores[:m], r).kept)).tolist() == [1, 2]
