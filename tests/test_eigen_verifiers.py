"""Eigen verifiers feed the shared kernel (issue 4, part 1)."""

import numpy as np

from gmmcollapse import feedback
from gmmcollapse.eigen import sample_matrices
from gmmcollapse.eigen.verifiers import invariant_scores, oracle_scores


def test_oracle_prune_keeps_exactly_the_correct_candidates(key):
    b = sample_matrices(key, 50, k=4)
    true = np.asarray(b.eigenvalues)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (50, 3, 4)) * np.array([0.0, 0.05, 1.0])[None, :, None]
    pred = true[:, None, :] + noise
    pred[0, 2] = np.nan  # an invalid decode
    scores = np.asarray(oracle_scores(pred, true))
    sel = feedback.prune(scores, -0.02)
    err = np.abs(pred - true[:, None]).sum(-1) / np.abs(true).sum(-1)[:, None]
    np.testing.assert_array_equal(np.asarray(sel.mask), np.nan_to_num(err, nan=np.inf) <= 0.02)
    assert bool(sel.mask[:, 0].all()) and not bool(sel.mask[0, 2])


def test_invariants_accept_truth_and_reject_perturbations(key):
    b = sample_matrices(key, 200, k=5)
    true = np.asarray(b.eigenvalues)
    good = np.asarray(invariant_scores(b.matrices, true[:, None, :]))
    assert np.all(good > -1e-12)
    bumped = true.copy()
    bumped[:, 0] += 1.0  # breaks the trace identity by 1
    bad = np.asarray(invariant_scores(b.matrices, bumped[:, None, :]))
    assert np.all(bad < -1e-3)
    # a wrong answer can satisfy both identities: permuting eigenvalues keeps the invariants
    swapped = true[:, ::-1][:, None, :]
    assert np.all(np.asarray(invariant_scores(b.matrices, swapped)) > -1e-12)
    # best-of-k by the invariant score never picks an invalid (NaN) candidate
    cand = np.stack([bumped, np.full_like(true, np.nan), true], axis=1)
    pick = feedback.best_of_k(np.asarray(invariant_scores(b.matrices, cand)))
    np.testing.assert_array_equal(np.asarray(pick.choice), 2)
