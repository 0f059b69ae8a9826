"""Predictions of the Gaussian-mixture model of training on verified synthesized data.

Everything here is pure ``jax.numpy`` in float64, broadcasts over its arguments, and works
under ``jit``, ``vmap`` and ``grad``. Each function runs under ``jax.enable_x64(True)``
(:func:`gmmcollapse.theory.basic.in_float64`): it returns float64 arrays whatever the user's
``jax_enable_x64`` setting, and leaves that setting unchanged.

Bad inputs never become plausible numbers. Concrete values out of their domain raise
``ValueError`` naming the parameter and its range (strings are not numbers; arguments that do
not broadcast are named). Under ``jit``/``vmap``/``grad`` every output is NaN at the points
where a traced input is out of its domain, NaN inputs included, as in ``jax.scipy``;
:func:`checked` raises there instead (``jax.experimental.checkify``). Details:
``docs/theory.md``, section "Bad inputs".
"""

from gmmcollapse._validate import checked
from gmmcollapse.theory.basic import (
    bayes_accuracy,
    breakdown_point,
    effective_noise,
    infinite_data_accuracy,
    keep_fraction,
)
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
    clopper_pearson_interval,
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
from gmmcollapse.theory.retraining import RetrainingLimit, retraining_accuracy, retraining_limit
from gmmcollapse.theory.ridge import (
    RidgeLimit,
    clean_ridge_accuracy,
    mixed_ridge_accuracy,
    ridge_accuracy,
    ridge_limit,
    shifted_mixed_ridge_accuracy,
    solve_delta,
)
from gmmcollapse.theory.selection import (
    SelectionLimit,
    finite_breakdown_point,
    flip_linear_ridge_accuracy,
    flip_linear_ridge_limit,
    linear_ridge_accuracy,
    linear_ridge_limit,
)

__all__ = [
    "BreakdownEstimate",
    "ClassLimit",
    "KeepRates",
    "RetrainingLimit",
    "RidgeLimit",
    "SelectionLimit",
    "bayes_accuracy",
    "bivariate_normal_cdf",
    "breakdown_point",
    "checked",
    "class_breakdown_margin",
    "class_infinite_data_accuracy",
    "class_infinite_data_limit",
    "class_is_optimal",
    "clean_ridge_accuracy",
    "clopper_pearson_interval",
    "effective_noise",
    "estimate_breakdown_point",
    "finite_breakdown_point",
    "flip_linear_infinite_data_accuracy",
    "flip_linear_keep_rates",
    "flip_linear_ridge_accuracy",
    "flip_linear_ridge_limit",
    "infinite_data_accuracy",
    "keep_fraction",
    "linear_infinite_data_accuracy",
    "linear_keep_rates",
    "linear_ridge_accuracy",
    "linear_ridge_limit",
    "mixed_ridge_accuracy",
    "retraining_accuracy",
    "retraining_limit",
    "ridge_accuracy",
    "ridge_limit",
    "shifted_mixed_ridge_accuracy",
    "solve_delta",
    "wilson_interval",
]
