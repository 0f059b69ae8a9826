"""One encoder-decoder transformer, its decoding and its training loop, shared by the
eigenvalue (:mod:`gmmcollapse.eigen`) and summarization experiments.

* :mod:`~gmmcollapse.models.transformer`: :class:`TransformerConfig`, :class:`Transformer`
  (Flax NNX), special token ids ``PAD``, ``BOS``, ``EOS``.
* :mod:`~gmmcollapse.models.decode`: jitted greedy decoding and beam search (all k candidates
  with log-probabilities), :func:`generate` over large arrays, :func:`score` (teacher-forced
  log-probabilities of given targets).
* :mod:`~gmmcollapse.models.train`: :class:`TrainConfig` (Adam, warm-up + cosine, clipping),
  :func:`train` with evaluation, orbax checkpoints and resume; :func:`train_steps` (the same
  steps, one jitted call at a time); :func:`save_model`, :func:`load_model`.
"""

from gmmcollapse.models.decode import Generated, beam_search, generate, greedy, score
from gmmcollapse.models.train import (
    TrainConfig,
    TrainResult,
    TrainState,
    bind,
    init_params,
    init_state,
    load_model,
    loss_fn,
    save_model,
    train,
    train_steps,
)
from gmmcollapse.models.transformer import (
    BOS,
    EOS,
    N_SPECIAL,
    PAD,
    Transformer,
    TransformerConfig,
    shift_right,
)

__all__ = [
    "BOS",
    "EOS",
    "N_SPECIAL",
    "PAD",
    "Generated",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Transformer",
    "TransformerConfig",
    "beam_search",
    "bind",
    "generate",
    "greedy",
    "init_params",
    "init_state",
    "load_model",
    "loss_fn",
    "save_model",
    "score",
    "shift_right",
    "train",
    "train_steps",
]
