"""Training loop: optax Adam with warm-up + cosine decay, gradient clipping, evaluation during
training, orbax checkpoints (an interrupted training resumes where it stopped), progress bar.

Checkpoints (with a checkpoint directory) are written every ``ckpt_every`` steps and also
whenever ``ckpt_seconds`` have passed since the last one, so a long run resumes near where it
stopped whatever its step counts; where they fall never changes the numbers.

The training set stays on the host; each jitted call receives the batches of
``steps_per_call`` optimizer steps and runs them with ``lax.scan``, so the Python loop costs
little per step and the compiled step does not depend on the data size (retraining on
selections of different sizes reuses one compilation).
The batch of step ``s`` depends only on ``(seed, s)`` (epochs are seeded permutations), and the
dropout key of step ``s`` is ``fold_in(key, s)``: a resumed run is bitwise the same as an
uninterrupted one.

Parameters are kept as a plain nested dict (``nnx.to_pure_dict``) so optax and orbax see
ordinary pytrees; :func:`bind` turns them back into a :class:`Transformer`.

Training starts from a fresh model seeded by ``seed``, or, with ``init=``, from given parameters
(fine-tuning a pretrained model: a fresh optimizer state, the same batches and schedule); the
checkpoint fingerprint then records a hash of those parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gmmcollapse._validate import check_int, check_range
from gmmcollapse.models.transformer import PAD, Transformer, TransformerConfig
from gmmcollapse.store import digest, read_json, write_json

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "bind",
    "init_params",
    "init_state",
    "load_model",
    "loss_fn",
    "save_model",
    "train",
    "train_steps",
]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe.

    Attributes:
        steps: optimizer steps.
        batch_size: examples per step.
        lr: peak learning rate (reached after ``warmup`` steps, then cosine decay).
        warmup: linear warm-up steps (clipped to ``steps``).
        end_lr_ratio: final learning rate as a fraction of ``lr``.
        b1, b2, eps: Adam moments.
        weight_decay: decoupled weight decay (AdamW); 0 gives plain Adam.
        clip: global gradient-norm clipping threshold (``inf`` disables it).
        label_smoothing: cross-entropy label smoothing.
        seed: initialisation, batch order and dropout.
        eval_every: evaluate every this many steps (0: only at the end).
        ckpt_every: checkpoint every this many steps (0: only at the end) when a checkpoint
            directory is given.
        ckpt_seconds: also checkpoint after the first jitted call that ends at least this many
            seconds after the last checkpoint (or the start), so that a run whose step
            checkpoints are far apart still resumes near where it stopped; ``0``: after every
            call, ``inf``: never. Checkpoints fall between the same jitted calls either way,
            so they never change the results, and the value is not part of a checkpoint's
            fingerprint (a run may resume with another).
        steps_per_call: optimizer steps fused into one jitted call.
        micro_batch: examples per gradient micro-batch (0: the whole batch). A step then sums
            the token-weighted gradients of ``batch_size // micro_batch`` micro-batches (a
            ``lax.scan``) before its one optimizer update: the same step up to floating-point
            summation order (dropout keys differ), on activations small enough to stay in
            cache. On the 2-core CPU, 4 micro-batches of 16 (77 + 17 tokens each) train 0-15%
            faster than one batch of 64 (``benchmarks/bench_eigen.py``).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 200
    end_lr_ratio: float = 0.05
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-9
    weight_decay: float = 0.0
    clip: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    eval_every: int = 0
    ckpt_every: int = 0
    ckpt_seconds: float = 60.0
    steps_per_call: int = 50
    micro_batch: int = 0

    def __post_init__(self):
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0.0, lo_open=True)
        check_int("warmup", self.warmup, 0)
        check_range("end_lr_ratio", self.end_lr_ratio, 0.0, 1.0)
        check_range("b1", self.b1, 0.0, 1.0, hi_open=True)
        check_range("b2", self.b2, 0.0, 1.0, hi_open=True)
        check_range("eps", self.eps, 0.0, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("clip", self.clip, 0.0, lo_open=True, allow_inf=True)
        check_range("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        check_int("seed", self.seed, 0)
        check_int("eval_every", self.eval_every, 0)
        check_int("ckpt_every", self.ckpt_every, 0)
        check_range("ckpt_seconds", self.ckpt_seconds, 0.0, allow_inf=True)
        check_int("steps_per_call", self.steps_per_call, 1)
        check_int("micro_batch", self.micro_batch, 0)
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ValueError(
                f"micro_batch must divide batch_size, got {self.micro_batch} and {self.batch_size}"
            )

    def schedule(self) -> optax.Schedule:
        warm = min(self.warmup, self.steps)
        return optax.warmup_cosine_decay_schedule(
            0.0, self.lr, warm, max(self.steps, warm + 1), self.lr * self.end_lr_ratio
        )

    def optimizer(self) -> optax.GradientTransformation:
        parts = [] if math.isinf(self.clip) else [optax.clip_by_global_norm(self.clip)]
        parts.append(
            optax.adamw(self.schedule(), self.b1, self.b2, self.eps, weight_decay=self.weight_decay)
        )
        return optax.chain(*parts)


class TrainResult(NamedTuple):
    """The trained model and its history (one dict per evaluation: step, loss, lr, ... )."""

    model: Transformer
    history: list[dict]


def init_params(cfg: TransformerConfig, seed: int = 0) -> tuple[Any, dict]:
    """(graphdef, params as a pure dict) of a freshly initialised model."""
    model = Transformer(cfg, rngs=nnx.Rngs(seed))
    graphdef, state = nnx.split(model)
    return graphdef, nnx.to_pure_dict(state)


def bind(graphdef, params: dict) -> Transformer:
    """A :class:`Transformer` with the given parameters (works on traced values)."""
    flat = nnx.traversals.flatten_mapping(params)
    return nnx.merge(graphdef, nnx.from_flat_state({k: nnx.Param(v) for k, v in flat.items()}))


def loss_fn(model: Transformer, src, tgt, *, dropout_key=None, label_smoothing: float = 0.0):
    """Mean token cross-entropy over non-PAD target positions; returns (loss, n_tokens)."""
    logits = model(src, tgt, dropout_key=dropout_key)
    onehot = jax.nn.one_hot(tgt, logits.shape[-1], dtype=logits.dtype)
    if label_smoothing:
        onehot = optax.smooth_labels(onehot, label_smoothing)
    ce = optax.softmax_cross_entropy(logits, onehot)
    w = (tgt != PAD).astype(ce.dtype)
    n = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sum(ce * w) / n, n


def _batch_indices(step0: int, n_steps: int, batch: int, n: int, seed: int) -> np.ndarray:
    """Example indices for steps ``step0 .. step0 + n_steps - 1``: (n_steps, batch).

    Positions ``s * batch + j`` index an endless concatenation of per-epoch permutations, the
    permutation of epoch ``e`` seeded by ``(seed, e)``.
    """
    pos = np.arange(step0 * batch, (step0 + n_steps) * batch, dtype=np.int64)
    epochs = pos // n
    out = np.empty(pos.shape, np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] - e * n]
    return out.reshape(n_steps, batch).astype(np.int32)


def _fingerprint(model_cfg: TransformerConfig, train_cfg: TrainConfig, n: int, data_hash: str):
    return {
        "model": dataclasses.asdict(model_cfg),
        "train": {
            k: v
            for k, v in dataclasses.asdict(train_cfg).items()
            # micro_batch=0 is left out so that checkpoints written before it existed resume;
            # when to evaluate or checkpoint by time changes nothing that is saved
            if k not in ("eval_every", "ckpt_seconds") and not (k == "micro_batch" and v == 0)
        },
        "n_examples": n,
        "data": data_hash,
    }


def _params_hash(params: Any) -> str:
    """A hash of a parameter pytree's structure, shapes, dtypes and values."""
    leaves, treedef = jax.tree.flatten(params)
    parts = [str(treedef)]
    for a in leaves:
        a = np.ascontiguousarray(np.asarray(a))
        parts += [f"{a.shape}{a.dtype}", a.tobytes()]
    return digest(*parts, length=16)


def _start_params(init: Any, fresh: dict) -> dict:
    """``init`` (a :class:`Transformer` or its parameters as a pure dict, as
    :func:`init_params` gives them) as the parameters to start from: the structure and shapes
    of ``fresh`` (the model being trained), its dtypes, as uncommitted arrays like a fresh
    model's (the same compiled step). Another model's parameters are a ``ValueError``."""
    if isinstance(init, nnx.Module):
        init = nnx.to_pure_dict(nnx.split(init)[1])
    try:
        same = jax.tree.structure(init) == jax.tree.structure(fresh)
    except Exception:  # noqa: BLE001 - anything that is not a pytree
        same = False
    if not same:
        raise ValueError(
            "init must be a Transformer or its parameters (a pure dict) with the structure "
            "of the model being trained"
        )
    for (path, a), b in zip(jax.tree.leaves_with_path(init), jax.tree.leaves(fresh), strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"init: parameter {jax.tree_util.keystr(path)} has shape {np.shape(a)}, the "
                f"model being trained {np.shape(b)} (another model configuration)"
            )
    return jax.tree.map(lambda a, b: jnp.asarray(np.asarray(a, dtype=b.dtype)), init, fresh)


def _data_hash(src: np.ndarray, tgt: np.ndarray) -> str:
    parts = [p for a in (src, tgt) for p in (str(a.shape), np.ascontiguousarray(a).tobytes())]
    return digest(*parts, length=16)


def _static(tc: TrainConfig) -> TrainConfig:
    """``tc`` with the fields the compiled step does not read set to fixed values: the static
    argument (jit cache key) of :func:`_run_steps` is the same for every seed and schedule of
    evaluations and checkpoints."""
    default = TrainConfig.__dataclass_fields__["ckpt_seconds"].default
    return dataclasses.replace(tc, seed=0, eval_every=0, ckpt_every=0, ckpt_seconds=default)


def _micro_grads(graphdef, tc: TrainConfig, dropout: bool, params, src, tgt, s, key):
    """Loss and gradient of one batch as a token-weighted sum over micro-batches."""

    def lossf(p, s_m, t_m, i):
        loss, n = loss_fn(
            bind(graphdef, p),
            s_m,
            t_m,
            dropout_key=jax.random.fold_in(jax.random.fold_in(key, s), i) if dropout else None,
            label_smoothing=tc.label_smoothing,
        )
        # loss * n is the token sum of the cross-entropy (n is clamped to >= 1 only when the
        # micro-batch has no token, and then the sum is 0); count the tokens unclamped
        return loss * n, jnp.sum(t_m != PAD).astype(jnp.float32)

    def acc(carry, xs):
        (total, n), g = jax.value_and_grad(lossf, has_aux=True)(params, *xs)
        return jax.tree.map(jnp.add, carry, (total, n, g)), None

    k = src.shape[0] // tc.micro_batch
    xs = (
        src.reshape(k, tc.micro_batch, *src.shape[1:]),
        tgt.reshape(k, tc.micro_batch, *tgt.shape[1:]),
        jnp.arange(k),
    )
    zero = jnp.zeros((), jnp.float32)
    init = (zero, zero, jax.tree.map(jnp.zeros_like, params))
    (total, n, grads), _ = jax.lax.scan(acc, init, xs)
    n = jnp.maximum(n, 1.0)
    return total / n, jax.tree.map(lambda g: g / n.astype(g.dtype), grads)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _run_steps(graphdef, tc: TrainConfig, dropout: bool, params, opt_state, src, tgt, steps, key):
    """``len(steps)`` optimizer steps on batches ``src[i], tgt[i]`` (scan over i)."""
    opt = tc.optimizer()

    def one_step(carry, xs):
        params, opt_state = carry
        s_b, t_b, s = xs

        def lossf(p):
            loss, _ = loss_fn(
                bind(graphdef, p),
                s_b,
                t_b,
                dropout_key=jax.random.fold_in(key, s) if dropout else None,
                label_smoothing=tc.label_smoothing,
            )
            return loss

        m = tc.micro_batch
        if not m or m == s_b.shape[0]:
            loss, grads = jax.value_and_grad(lossf)(params)
        else:
            loss, grads = _micro_grads(graphdef, tc, dropout, params, s_b, t_b, s, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), (src, tgt, steps))
    return params, opt_state, losses


class TrainState(NamedTuple):
    """A training in progress, as :func:`train_steps` advances it.

    Attributes:
        graphdef: the model's structure (from :func:`init_params`).
        params: its parameters, a pure dict.
        opt_state: the optimizer's state.
        step: optimizer steps taken so far.
    """

    graphdef: Any
    params: dict
    opt_state: Any
    step: int


def init_state(
    model_cfg: TransformerConfig, train_cfg: TrainConfig, init: Any = None
) -> TrainState:
    """The state :func:`train` starts from: a fresh model (seeded by ``train_cfg.seed``), or
    the parameters ``init`` (as in :func:`train`), a fresh optimizer state, step 0."""
    graphdef, params = init_params(model_cfg, train_cfg.seed)
    if init is not None:
        params = _start_params(init, params)
    return TrainState(graphdef, params, train_cfg.optimizer().init(params), 0)


def train_steps(
    model_cfg: TransformerConfig,
    train_cfg: TrainConfig,
    state: TrainState,
    src,
    tgt,
    n_steps: int | None = None,
) -> tuple[TrainState, np.ndarray]:
    """Optimizer steps ``state.step`` .. ``state.step + n_steps - 1`` of :func:`train`, in one
    jitted call.

    The steps are exactly :func:`train`'s: the same batches (gathered on the host from the
    ``(n, s)`` and ``(n, t)`` id arrays), dropout keys and compiled program, so calls of the
    sizes :func:`train` makes give its parameters bitwise. :func:`train` adds evaluation,
    checkpoints and a progress bar. Use it for custom loops and to time training
    (``benchmarks/bench_eigen.py``).

    Args:
        n_steps: steps in this call (default ``train_cfg.steps_per_call``); every new value
            compiles the step again.

    Returns:
        The advanced state and the per-step training losses (NumPy: copying them back waits
        for the call to finish).
    """
    k = train_cfg.steps_per_call if n_steps is None else n_steps
    check_int("n_steps", k, 1)
    src = np.asarray(src, np.int32)
    tgt = np.asarray(tgt, np.int32)
    idx = _batch_indices(state.step, k, train_cfg.batch_size, src.shape[0], train_cfg.seed)
    static_tc = _static(train_cfg)
    params, opt_state, losses = _run_steps(
        state.graphdef,
        static_tc,
        model_cfg.dropout > 0,
        state.params,
        state.opt_state,
        src[idx],
        tgt[idx],
        jnp.arange(state.step, state.step + k, dtype=jnp.int32),
        jax.random.key(train_cfg.seed),
    )
    return TrainState(state.graphdef, params, opt_state, state.step + k), np.asarray(losses)


def train(
    model_cfg: TransformerConfig,
    train_cfg: TrainConfig,
    src,
    tgt,
    *,
    eval_fn: Callable[[Transformer], dict] | None = None,
    ckpt_dir: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "train",
    on_checkpoint: Callable[[int], Any] | None = None,
    init: Any = None,
) -> TrainResult:
    """Train a fresh model on ``(src, tgt)`` id arrays (n, s) and (n, t).

    Args:
        eval_fn: called with the current model every ``eval_every`` steps and at the end; its
            dict is added to the history (e.g. held-out loss and task accuracy).
        ckpt_dir: orbax checkpoint directory. If it holds a checkpoint of the same model,
            recipe and data, training resumes from the latest one (and returns at once if it
            is complete); a checkpoint of a different configuration is an error.
            Checkpoints are written every ``ckpt_every`` steps, every ``ckpt_seconds``
            seconds and at the end.
        on_checkpoint: called with the step after each checkpoint is written (e.g. to record
            the progress of a longer run).
        init: start from these parameters instead of a fresh model: a :class:`Transformer`
            of ``model_cfg``'s shape or its parameters as a pure dict (fine-tuning a
            pretrained model). The optimizer state starts fresh; batches, dropout and the
            schedule are as without it. A checkpoint directory records a hash of ``init``, so
            resuming from other starting parameters is refused. ``None`` (default): a fresh
            model seeded by ``train_cfg.seed``.
    """
    src = np.asarray(src, np.int32)
    tgt = np.asarray(tgt, np.int32)
    if src.ndim != 2 or tgt.ndim != 2 or src.shape[0] != tgt.shape[0] or src.shape[0] == 0:
        raise ValueError(
            f"src and tgt must be non-empty (n, len) arrays with the same n, got {src.shape} "
            f"and {tgt.shape}"
        )
    if src.shape[1] > model_cfg.max_src_len or tgt.shape[1] > model_cfg.max_tgt_len:
        raise ValueError(
            f"sequences longer than the model allows: src {src.shape[1]} > max_src_len "
            f"{model_cfg.max_src_len} or tgt {tgt.shape[1]} > max_tgt_len {model_cfg.max_tgt_len}"
        )
    n = src.shape[0]
    tc = train_cfg
    graphdef, params = init_params(model_cfg, tc.seed)
    if init is not None:
        params = _start_params(init, params)
    opt = tc.optimizer()
    opt_state = opt.init(params)
    step = 0
    history: list[dict] = []
    losses: list[float] = []  # per-step losses since the last history record
    ckpt = None
    if ckpt_dir is not None:
        from gmmcollapse.models.checkpoint import TrainCheckpoints

        fp = _fingerprint(model_cfg, tc, n, _data_hash(src, tgt))
        if init is not None:  # without it, the fingerprint of every earlier checkpoint
            fp["init"] = _params_hash(params)
        ckpt = TrainCheckpoints(ckpt_dir, fp)
        restored = ckpt.restore({"params": params, "opt_state": opt_state})
        if restored is not None:
            step, tree, history, losses = restored
            # orbax returns device-committed arrays; a fresh run's are uncommitted. Match the
            # fresh run so the compiled step is reused (same jit cache key), bitwise the same.
            tree = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), tree)
            params, opt_state = tree["params"], tree["opt_state"]

    base_key = jax.random.key(tc.seed)
    static_tc = _static(tc)
    marks = {tc.steps}
    for every in (tc.eval_every, tc.ckpt_every if ckpt else 0):
        if every:
            marks.update(range(every, tc.steps, every))
    from tqdm.auto import tqdm

    bar = tqdm(total=tc.steps, initial=step, desc=desc, disable=not progress, unit="step")
    sched = tc.schedule()
    t0, ex0 = time.perf_counter(), step
    last_ckpt = t0
    while step < tc.steps:
        nxt = min(m for m in marks if m > step)
        k = min(tc.steps_per_call, nxt - step)
        idx = _batch_indices(step, k, tc.batch_size, n, tc.seed)
        steps = jnp.arange(step, step + k, dtype=jnp.int32)
        # batches are gathered on the host: the compiled step never depends on the data size
        params, opt_state, ls = _run_steps(
            graphdef,
            static_tc,
            model_cfg.dropout > 0,
            params,
            opt_state,
            src[idx],
            tgt[idx],
            steps,
            base_key,
        )
        ls = np.asarray(ls)
        losses.extend(ls.tolist())
        step += k
        bar.update(k)
        bar.set_postfix(loss=f"{ls[-1]:.4f}")
        if step in marks:
            dt = time.perf_counter() - t0
            rec = {
                "step": step,
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "lr": float(sched(step)),
                "examples_per_s": (step - ex0) * tc.batch_size / dt if dt > 0 else float("nan"),
            }
            if eval_fn is not None and (
                step == tc.steps or (tc.eval_every and step % tc.eval_every == 0)
            ):
                rec.update(eval_fn(bind(graphdef, params)))
            history.append(rec)
            losses = []
            t0, ex0 = time.perf_counter(), step
        if ckpt is None:
            continue
        # by steps (at the marks), or by time: after a call that ends ckpt_seconds after the
        # last checkpoint. Either way between the same calls as an uninterrupted run, with the
        # losses of the history record in progress, so a resumed run is bitwise the same
        at_ckpt = step == tc.steps or (tc.ckpt_every and step % tc.ckpt_every == 0)
        t_save = time.perf_counter()
        if at_ckpt or t_save - last_ckpt >= tc.ckpt_seconds:
            ckpt.save(step, {"params": params, "opt_state": opt_state}, history, losses)
            last_ckpt = time.perf_counter()
            t0 += last_ckpt - t_save  # examples_per_s leaves the writing out
            if on_checkpoint is not None:
                on_checkpoint(step)
    bar.close()
    return TrainResult(bind(graphdef, params), history)


def save_model(model: Transformer, path: str | os.PathLike) -> None:
    """Write ``model``'s configuration (JSON) and parameters (orbax) to directory ``path``."""
    from gmmcollapse.models.checkpoint import save_tree

    path = os.path.abspath(os.fspath(path))
    os.makedirs(path, exist_ok=True)
    _, state = nnx.split(model)
    save_tree(os.path.join(path, "params"), nnx.to_pure_dict(state))
    write_json(os.path.join(path, "config.json"), dataclasses.asdict(model.cfg))


def load_model(path: str | os.PathLike) -> Transformer:
    """Inverse of :func:`save_model`."""
    from gmmcollapse.models.checkpoint import load_tree

    path = os.path.abspath(os.fspath(path))
    cfg = TransformerConfig(**read_json(os.path.join(path, "config.json")))
    graphdef, template = init_params(cfg)
    return bind(graphdef, load_tree(os.path.join(path, "params"), template))
