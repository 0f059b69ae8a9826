"""Orbax checkpoints for training state and finished models.

:class:`TrainCheckpoints` keeps the latest two training checkpoints (parameters, optimizer
state, history and the per-step losses of the history record in progress) in a directory
together with a fingerprint of what is being trained; resuming with a different model, recipe
or data is refused with a clear error rather than silently mixing runs. :func:`save_tree` /
:func:`load_tree` store one pytree (e.g. a finished model's params).
"""

from __future__ import annotations

import os
from typing import Any

from gmmcollapse.store import claim_directory

__all__ = ["TrainCheckpoints", "load_tree", "save_tree"]


def _ocp():
    import orbax.checkpoint as ocp  # imported lazily: it is slow to import

    return ocp


class TrainCheckpoints:
    """Checkpoints of one training run in ``directory`` (created if needed)."""

    def __init__(self, directory: str | os.PathLike, fingerprint: dict, max_to_keep: int = 2):
        ocp = _ocp()
        self.directory = os.path.abspath(os.fspath(directory))
        claim_directory(
            self.directory,
            "fingerprint.json",
            fingerprint,
            "checkpoint directory",
            "use another directory or delete it",
        )
        self.manager = ocp.CheckpointManager(
            os.path.join(self.directory, "steps"),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def restore(self, template: Any) -> tuple[int, Any, list, list] | None:
        """(step, tree, history, pending losses) of the latest checkpoint, or None when there
        is none (checkpoints written before pending losses were kept have none)."""
        ocp = _ocp()
        step = self.manager.latest_step()
        if step is None:
            return None
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore()
            ),
        )
        hist = out["history"]
        return step, out["state"], list(hist["records"]), list(hist.get("pending", []))

    def save(self, step: int, tree: Any, history: list, pending: list | tuple = ()) -> None:
        """Write the checkpoint of ``step``: the pytree ``tree``, the ``history`` records and
        the ``pending`` per-step losses since the last record (floats: JSON keeps them
        exactly)."""
        ocp = _ocp()
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree),
                history=ocp.args.JsonSave({"records": history, "pending": list(pending)}),
            ),
        )
        self.manager.wait_until_finished()


def save_tree(path: str | os.PathLike, tree: Any) -> None:
    """Write one pytree of arrays to ``path`` (replaced if it exists)."""
    ocp = _ocp()
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.abspath(os.fspath(path)), tree, force=True)
    ckptr.wait_until_finished()


def load_tree(path: str | os.PathLike, template: Any) -> Any:
    """Read a pytree written by :func:`save_tree`; ``template`` gives its structure/dtypes."""
    ocp = _ocp()
    return ocp.StandardCheckpointer().restore(os.path.abspath(os.fspath(path)), template)
