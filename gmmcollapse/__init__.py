"""gmmcollapse: training on synthesized data with feedback, in JAX.

Importing the package turns on ``jax_enable_x64``: the theory is computed in float64
("correct to the last digit"). Simulations choose their own dtype (float32 by default, for
accelerator speed), so this costs nothing there.
"""

import jax

jax.config.update("jax_enable_x64", True)

from gmmcollapse import feedback, gmm, sweep, theory

__version__ = "0.1.0"
__all__ = ["__version__", "feedback", "gmm", "sweep", "theory"]
