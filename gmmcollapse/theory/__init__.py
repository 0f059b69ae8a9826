"""Predictions of the Gaussian-mixture model of training on verified synthesized data.

Everything here is pure ``jax.numpy`` in float64 (the package enables ``jax_enable_x64`` on
import), broadcasts over its arguments, and works under ``jit``, ``vmap`` and ``grad``.
"""

from gmmcollapse.theory.basic import (
    bayes_accuracy,
    breakdown_point,
    effective_noise,
    infinite_data_accuracy,
    keep_fraction,
)

# <helpers add their imports below this line>
from gmmcollapse.theory.bvn import bivariate_normal_cdf
from gmmcollapse.theory.classwise import (
    ClassLimit,
    class_breakdown_margin,
    class_infinite_data_accuracy,
    class_infinite_data_limit,
    class_is_optimal,
)
from gmmcollapse.theory.estimate import (
    BreakdownEstimate,
    estimate_breakdown_point,
    wilson_interval,
)
from gmmcollapse.theory.linear import (
    KeepRates,
    flip_linear_infinite_data_accuracy,
    flip_linear_keep_rates,
    linear_infinite_data_accuracy,
    linear_keep_rates,
)
from gmmcollapse.theory.ridge import (
    RidgeLimit,
    clean_ridge_accuracy,
    mixed_ridge_accuracy,
    ridge_accuracy,
    ridge_limit,
    shifted_mixed_ridge_accuracy,
    solve_delta,
)

__all__ = [
    "BreakdownEstimate",
    "ClassLimit",
    "KeepRates",
    "RidgeLimit",
    "bayes_accuracy",
    # <helpers add their names below this line>
    "bivariate_normal_cdf",
    "breakdown_point",
    "class_breakdown_margin",
    "class_infinite_data_accuracy",
    "class_infinite_data_limit",
    "class_is_optimal",
    "clean_ridge_accuracy",
    "effective_noise",
    "estimate_breakdown_point",
    "flip_linear_infinite_data_accuracy",
    "flip_linear_keep_rates",
    "infinite_data_accuracy",
    "keep_fraction",
    "linear_infinite_data_accuracy",
    "linear_keep_rates",
    "mixed_ridge_accuracy",
    "ridge_accuracy",
    "ridge_limit",
    "shifted_mixed_ridge_accuracy",
    "solve_delta",
    "wilson_interval",
]
