"""gmmcollapse: training on synthesized data with feedback, in JAX.

Importing the package changes no global setting: ``jax_enable_x64`` stays as the user set
it. The theory computes in float64 whatever that setting ("correct to the last digit"), and
the simulations choose their own dtypes (float32 samples by default, for accelerator speed);
see "Precision and dtypes" in ``docs/guide.md``.
"""

from gmmcollapse import feedback, gmm, theory

__version__ = "0.1.0"
__all__ = ["__version__", "feedback", "gmm", "theory"]
