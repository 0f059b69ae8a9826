import jax
import pytest

import gmmcollapse  # noqa: F401  (enables float64)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
