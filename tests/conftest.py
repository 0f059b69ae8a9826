import jax
import pytest

import gmmcollapse  # noqa: F401  (enables float64)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


from hypothesis import settings

# JAX compiles on first call, which can exceed hypothesis' per-example deadline.
settings.register_profile("gmmcollapse", deadline=None, max_examples=50)
settings.load_profile("gmmcollapse")
