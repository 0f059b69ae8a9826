"""Static structure (:class:`SimSpec`) and traced parameters (:class:`GMMParams`) of a run.

The split follows one rule: anything that changes array shapes or control flow is static and
lives in the frozen, hashable :class:`SimSpec` (changing it recompiles); every scientific
number lives in :class:`GMMParams` as an array and is traced (changing it never recompiles).
Sample counts are traced too: ``n <= SimSpec.n_max`` is implemented by masking, so a sweep
over ``n`` up to a capacity compiles once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from gmmcollapse._validate import (
    check_choice,
    check_int,
    check_not_both_zero,
    check_range,
    is_concrete,
)
from gmmcollapse.theory.basic import in_float64

__all__ = [
    "PARAM_DEFAULTS",
    "GMMParams",
    "SimSpec",
    "make_params",
    "spec_dict",
    "validate_params",
]

GENERATORS = ("flip", "linear", "ridge")
LEARNERS = ("ridge", "logistic")
DATA_MODES = ("replace", "accumulate")
SOLVERS = ("auto", "primal", "dual")


@dataclass(frozen=True)
class SimSpec:
    """Shapes and structural choices of a simulation (static under ``jit``).

    Attributes:
        n_max: capacity, synthesized samples per round; the traced ``params.n`` must be <= it.
        d: dimension of x.
        generator: round-0 labeller. ``"flip"``: the true label flipped w.p. ``p`` (per class);
            ``"linear"``: ``sign(w_gen . x)`` with ``w_gen`` at angle ``theta_gen`` to mu;
            ``"ridge"``: ``sign(w . x)`` for ridge (strength ``lam_gen``) trained on
            ``n_real`` real samples. Later rounds always use the previous round's model.
        learner: ``"ridge"`` (closed form) or ``"logistic"`` (L2-regularised, Newton).
        rounds: R, rounds of synthesize -> select -> retrain.
        data: ``"replace"`` trains round r on round r's kept data only; ``"accumulate"`` on the
            kept data of rounds 0..r.
        n_real_max: capacity for real samples (ridge generator and ``mix_real``).
        n_test: 0 for the exact accuracy only; > 0 also reports an empirical test accuracy on
            that many fresh samples.
        dtype: float dtype of the sampled data and the solves ("float32" or "float64").
        solver: ridge form. ``"primal"`` solves d x d, ``"dual"`` the rows x rows system;
            ``"auto"`` picks the cheaper (dual only when rows < d and ``data == "replace"``).
        logistic_steps: Newton steps for the logistic learner (each with a 4-point line search).
        block_rows: rows generated per random block (0: ``min(n_max, 512)``). Block ``b``
            draws from ``fold_in(key, b)``, so row i's data do not depend on how blocks are
            processed, nor on the capacity once ``n_max >= 512``. The capacity is rounded up
            to a whole number of blocks (masked rows).
        stream: accumulate ``X^T Q X`` and ``X^T Q y~`` with ``lax.scan`` over steps of
            ``stream_blocks`` blocks (primal ridge only): peak memory
            O(d^2 + stream_blocks * block_rows * d) for any n, the same draws as without.
        stream_blocks: blocks per streaming step.
    """

    n_max: int
    d: int
    generator: Literal["flip", "linear", "ridge"] = "flip"
    learner: Literal["ridge", "logistic"] = "ridge"
    rounds: int = 1
    data: Literal["replace", "accumulate"] = "replace"
    n_real_max: int = 0
    n_test: int = 0
    dtype: str = "float32"
    solver: Literal["auto", "primal", "dual"] = "auto"
    logistic_steps: int = 25
    block_rows: int = 0
    stream: bool = False
    stream_blocks: int = 8

    def __post_init__(self):
        check_int("n_max", self.n_max, 1)
        check_int("d", self.d, 1)
        check_int("rounds", self.rounds, 1)
        check_int("n_real_max", self.n_real_max, 0)
        check_int("n_test", self.n_test, 0)
        check_int("logistic_steps", self.logistic_steps, 1)
        check_int("block_rows", self.block_rows, 0)
        check_int("stream_blocks", self.stream_blocks, 1)
        if self.stream and (self.learner != "ridge" or self.solver == "dual"):
            raise ValueError("stream=True needs the ridge learner with the primal solver")
        for name, allowed in (
            ("generator", GENERATORS),
            ("learner", LEARNERS),
            ("data", DATA_MODES),
            ("solver", SOLVERS),
            ("dtype", ("float32", "float64")),
        ):
            check_choice(name, getattr(self, name), allowed)
        if self.generator == "ridge" and self.n_real_max < 1:
            raise ValueError(
                "n_real_max must be >= 1 for the ridge generator (it trains on real data)"
            )

    @property
    def rows_per_block(self) -> int:
        return self.block_rows or min(self.n_max, 512)

    @property
    def n_blocks(self) -> int:
        return -(-self.n_max // self.rows_per_block)

    @property
    def use_dual(self) -> bool:
        rows = self.n_blocks * self.rows_per_block + self.n_real_max
        if self.learner != "ridge" or self.data != "replace" or self.stream:
            return False
        if self.solver == "auto":
            return rows < self.d
        return self.solver == "dual"


class GMMParams(NamedTuple):
    """Traced parameters of one run (each field an array; grids add a leading axis).

    ``p``, ``phi`` and ``psi`` may be scalars or length-2 arrays ``[class +1, class -1]``
    (class-specific rates, indexed by the true class).

    Attributes:
        n: synthesized samples per round (<= ``SimSpec.n_max``), pruned ones included.
        snr: ``||mu||``.
        p: generator label-flip rate (``generator="flip"`` only).
        phi: keep rate of correctly labelled samples (noisy oracle part of the verifier).
        psi: keep rate of wrongly labelled samples.
        lam: ridge strength of the learner (``w = (X^T Q X/N + lam I)^{-1} X^T Q y~/N``);
            logistic uses ``(lam/2) ||w||^2`` added to the mean log-loss over N.
        theta_gen: angle of the linear generator to mu.
        theta_ver: angle of the linear verifier to mu (``f`` is the second axis).
        tau: linear-verifier margin: keep iff ``y~ (w_ver . x) >= tau``; ``-inf`` turns it off.
        n_real: real samples (<= ``SimSpec.n_real_max``).
        mix_real: 1.0 to add the real samples to every round's training set, else 0.0 (no
            other value: fractional weights are rejected by :func:`validate_params`).
        lam_gen: ridge strength of the ridge generator.
        beta, gamma, sigma: synthesized features ``x = y (beta mu + gamma f) + sigma z``.

    The verifier is the composition of the noisy oracle (phi, psi) and the linear margin test:
    no verifier is ``phi = psi = 1, tau = -inf``; the oracle ``phi = 1, psi = 0``.
    """

    n: Array
    snr: Array
    p: Array
    phi: Array
    psi: Array
    lam: Array
    theta_gen: Array
    theta_ver: Array
    tau: Array
    n_real: Array
    mix_real: Array
    lam_gen: Array
    beta: Array
    gamma: Array
    sigma: Array


#: the value of every GMMParams field that make_params may leave out (n and snr have none)
PARAM_DEFAULTS = {
    "p": 0.0,
    "phi": 1.0,
    "psi": 1.0,
    "lam": 0.1,
    "theta_gen": 0.0,
    "theta_ver": 0.0,
    "tau": -math.inf,
    "n_real": 0,
    "mix_real": 0.0,
    "lam_gen": 0.1,
    "beta": 1.0,
    "gamma": 0.0,
    "sigma": 1.0,
}


@in_float64
def make_params(n, snr, **kwargs) -> GMMParams:
    """Build :class:`GMMParams` from keywords (defaults: no verifier, no flips, lam = 0.1).

    Values are converted to float64 arrays; nothing is validated here (see
    :func:`validate_params`).
    """
    unknown = set(kwargs) - set(PARAM_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values = {**PARAM_DEFAULTS, **kwargs, "n": n, "snr": snr}
    return GMMParams(**{f: jnp.asarray(values[f], jnp.float64) for f in GMMParams._fields})


def validate_params(params: GMMParams, spec: SimSpec) -> None:
    """Raise ``ValueError`` (naming the parameter and its range) for invalid concrete values."""
    check_int("n", params.n, 1, spec.n_max)
    check_range("snr", params.snr, 0.0)
    check_range("p", params.p, 0.0, 1.0)
    check_range("phi", params.phi, 0.0, 1.0)
    check_range("psi", params.psi, 0.0, 1.0)
    check_not_both_zero("phi", params.phi, "psi", params.psi)
    check_range("lam", params.lam, 0.0, lo_open=True)
    check_range("lam_gen", params.lam_gen, 0.0, lo_open=True)
    check_range("theta_gen", params.theta_gen)
    check_range("theta_ver", params.theta_ver)
    check_range("tau", params.tau, allow_inf=True)
    check_int("n_real", params.n_real, 0, spec.n_real_max)
    check_range("mix_real", params.mix_real, 0.0, 1.0)
    mix = np.asarray(params.mix_real, np.float64) if is_concrete(params.mix_real) else None
    if mix is not None and np.any((mix != 0.0) & (mix != 1.0)):
        raise ValueError(
            "mix_real must be 0 or 1 (the real rows are added whole or not at all), "
            f"got {float(mix[(mix != 0.0) & (mix != 1.0)].flat[0]):g}"
        )
    check_range("beta", params.beta)
    check_range("gamma", params.gamma)
    check_range("sigma", params.sigma, 0.0, lo_open=True)
    if spec.d < 2 and np.any(np.asarray(params.gamma) != 0):
        raise ValueError("gamma must be 0 when d = 1 (no direction orthogonal to mu)")
    if spec.generator == "ridge" and np.any(np.asarray(params.n_real) < 1):
        raise ValueError("n_real must be >= 1 for the ridge generator")


def spec_dict(spec: SimSpec) -> dict:
    """Plain-dict view of a spec (for results metadata)."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)}
