"""Eigenvalue data and metric (issue 4, part 1)."""

import jax
import numpy as np
import pytest

from gmmcollapse.eigen import accuracy, relative_l1_error, sample_matrices


def test_matrices_are_symmetric_uniform_and_eigenvalues_sorted(key):
    b = sample_matrices(key, 2000, k=5, scale=10.0)
    m = np.asarray(b.matrices)
    np.testing.assert_array_equal(m, np.swapaxes(m, -1, -2))
    assert m.min() >= -10 and m.max() <= 10
    # every entry uniform in [-10, 10]: mean 0, variance 100/3 (Monte Carlo, 6 SE)
    flat = m[:, np.triu_indices(5)[0], np.triu_indices(5)[1]].ravel()
    assert abs(flat.mean()) < 6 * np.sqrt(100 / 3 / flat.size)
    assert abs(flat.var() - 100 / 3) < 6 * np.sqrt(2 * (100 / 3) ** 2 / flat.size) * 1.2
    ev = np.asarray(b.eigenvalues)
    assert np.all(np.diff(ev, axis=-1) <= 0)
    ref = np.sort(np.linalg.eigvalsh(m), axis=-1)[:, ::-1]
    np.testing.assert_allclose(ev, ref, atol=1e-10)
    # trace and Frobenius identities
    np.testing.assert_allclose(ev.sum(-1), np.trace(m, axis1=1, axis2=2), atol=1e-9)
    np.testing.assert_allclose((ev**2).sum(-1), (m**2).sum((1, 2)), rtol=1e-10)


def test_same_key_same_data_and_k_configurable(key):
    a, b = sample_matrices(key, 3, k=3), sample_matrices(key, 3, k=3)
    np.testing.assert_array_equal(a.matrices, b.matrices)
    assert a.matrices.shape == (3, 3, 3) and a.eigenvalues.shape == (3, 3)
    c = sample_matrices(jax.random.key(1), 3, k=3)
    assert not np.array_equal(a.matrices, c.matrices)


def test_metric_thresholds_and_invalid_rows():
    true = np.array([[4.0, 2.0, -2.0], [1.0, 1.0, 1.0], [3.0, 0.0, -1.0]])
    pred = np.array([[4.0, 2.0, -2.1], [1.0, 1.0, 1.0], [np.nan, 0.0, -1.0]])
    err = np.asarray(relative_l1_error(pred, true))
    assert err[0] == pytest.approx(0.1 / 8) and err[1] == 0.0 and np.isnan(err[2])
    acc = accuracy(pred, true)
    assert float(acc["0.05"]) == pytest.approx(2 / 3)  # the NaN row is wrong
    assert float(acc["0.01"]) == pytest.approx(1 / 3)  # 0.0125 > 1%
    valid = np.array([[True] * 3, [True, False, True], [True] * 3])
    assert float(accuracy(pred, true, valid)["0.05"]) == pytest.approx(1 / 3)


def test_bad_sizes_are_rejected(key):
    with pytest.raises(ValueError, match="^k "):
        sample_matrices(key, 2, k=0)
    with pytest.raises(ValueError, match="^scale"):
        sample_matrices(key, 2, scale=-1.0)
