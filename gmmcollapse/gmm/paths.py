"""Choosing the fastest exact way to simulate a group of grid points.

Every path computes the same model; they differ in cost and memory:

* ``"fast"``: the exact sufficient-statistics sampler (:mod:`gmmcollapse.gmm.fast`) when
  selection does not depend on x (flip generator, noisy-oracle verifier without a margin
  test, one round, ridge learner). Cost independent of n. Equal *in distribution* to the
  naive path, not draw for draw.
* ``"projected"``: the exact sampler of :mod:`gmmcollapse.gmm.projected` when selection reads
  x (linear or ridge generators, the linear margin test, several rounds with
  ``data="replace"``; ridge learner, unshifted law). Cost O(n + d): each row's three
  coordinates in the plane of mu, the verifier and the generator, never an n x d matrix.
  Equal in distribution to the naive path.
* ``"dual"``: ridge through the rows x rows system (rows < d).
* ``"primal"``: ridge through the d x d system, all rows of a run in memory.
* ``"streaming"``: primal ridge with the Gram matrix accumulated over row blocks by
  ``lax.scan``: peak memory O(d^2 + stream_blocks * block_rows * d) for any n. The same
  draws as ``"primal"`` (data are generated block by block in both); only the summation
  order of the Gram matrix differs (float64: agreement to ~1e-15).

:func:`plan` picks one per static group and returns it with the spec to run; the sweep
records the choice in its metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from gmmcollapse._validate import check_choice
from gmmcollapse.gmm.simulate import _simulate
from gmmcollapse.gmm.spec import SimSpec

__all__ = ["PATHS", "STREAM_BYTES", "Plan", "plan"]

PATHS = ("fast", "projected", "dual", "primal", "streaming")

#: a run whose data would take more than this many bytes streams its rows in blocks
STREAM_BYTES = 64 * 2**20


class Plan(NamedTuple):
    """How to simulate one static group: ``simulate(key, params, spec)`` and its name."""

    path: str
    spec: SimSpec
    simulate: Callable


def plan(spec: SimSpec, pts: Mapping[str, Any] | None = None, path: str = "auto") -> Plan:
    """The fastest exact path for ``spec`` given the group's (concrete) parameter values.

    Args:
        spec: the group's :class:`SimSpec`.
        pts: the group's parameter arrays (GMMParams fields); the fast sampler is eligible
            only if every point has ``tau = -inf`` (no margin test).
        path: ``"auto"`` or one of :data:`PATHS` to force a path (``ValueError`` if that path
            cannot run this model exactly).
    """
    check_choice("path", path, ("auto", *PATHS))
    from gmmcollapse.gmm import fast

    can_fast = fast.eligible(spec, pts)
    if path == "fast" or (path == "auto" and can_fast):
        if not can_fast:
            raise ValueError(
                "path 'fast' needs a flip generator, one round, the ridge learner and no margin "
                "test (tau = -inf at every point)"
            )
        return Plan("fast", spec, fast.fast_simulate)
    from gmmcollapse.gmm import projected

    reason = projected.why_not(spec, pts)
    if path == "projected" or (path == "auto" and reason is None):
        if reason is not None:
            raise ValueError(f"path 'projected' cannot run this model exactly: {reason}")
        return Plan("projected", spec, projected.projected_simulate)
    itemsize = np.dtype(spec.dtype).itemsize
    big = spec.n_max * spec.d * itemsize > STREAM_BYTES
    streamable = spec.learner == "ridge"
    if path == "streaming" or (path == "auto" and big and streamable and not spec.use_dual):
        if not streamable:
            raise ValueError("path 'streaming' needs the ridge learner")
        return Plan("streaming", dataclasses.replace(spec, stream=True, solver="primal"), _simulate)
    if path == "dual" or (path == "auto" and spec.use_dual):
        if spec.learner != "ridge" or spec.data != "replace":
            raise ValueError("path 'dual' needs the ridge learner and data='replace'")
        return Plan("dual", dataclasses.replace(spec, solver="dual"), _simulate)
    return Plan(
        "primal",
        dataclasses.replace(spec, solver="primal") if spec.learner == "ridge" else spec,
        _simulate,
    )
