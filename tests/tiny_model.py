"""A tiny encoder-decoder and copy-task data shared by the training tests (not a test module)."""

import numpy as np

from gmmcollapse.models import EOS, N_SPECIAL, TransformerConfig

#: one layer each side, width 16: compiles and trains in seconds
CFG = TransformerConfig(
    vocab_size=8, max_src_len=3, max_tgt_len=4, enc_layers=1, dec_layers=1, width=16, heads=2, ff=32
)


def copy_data(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(src, tgt)``: random 3-token sources; the target copies them and ends with EOS."""
    rng = np.random.default_rng(seed)
    src = rng.integers(N_SPECIAL, 8, (n, 3)).astype(np.int32)
    return src, np.concatenate([src, np.full((n, 1), EOS, np.int32)], axis=1)
