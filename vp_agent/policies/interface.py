"""The one policy interface: what the evaluation runner drives and every policy implements.

Torch-free, so that the runner, its Ray workers and the adapters of ``eval.policies`` (scripted expert,
random, Stable-Baselines3, any callable) import it without torch; trained policies implement it through
:class:`vp_agent.policies.base.TorchPolicy`.

Both methods are batched over the environment slots being rolled out:

``reset(env_ids=None)``
    a new episode starts in the slots ``env_ids`` (``None``: every slot); forget their state (action chunks,
    observation history, random generators).
``act(obs, infos) -> np.ndarray``
    ``obs`` is a batch ``{"state": (B, D) float32, "pixels": {camera: (B, H, W, 3) uint8}}`` (``pixels`` absent
    for state-only protocols), ``infos`` a list of B dicts: ``instruction``, ``suite``, ``episode``, ``seed``,
    ``steps``, ``active`` and ``slot`` (the env slot, so a stateful policy keeps per-slot state); everything
    else the env knows (reward, task, split, the simulator state) only for ``privileged`` references.
    Returns ``(B, action_dim)`` actions in ``[-1, 1]``.

Attributes the runner reads, all optional (the defaults below):

- ``spec``, ``checkpoint_hash``: what built the policy and a hash of its weights; they go into every row;
- ``privileged``: a reference that may read the simulator's full state (expert, ``bc_state``);
- ``config``: a policy config naming ``camera``/``cameras``, ``use_image`` and ``frame_stride`` (checked
  against the protocol's observation before any rollout);
- ``training_record``: how a checkpoint was trained (method, demonstrations, seed, recipe hash), for the
  run manifest and the leaderboard's sample-efficiency table;
- ``generated``: a policy that imagines video (Video Policy) keeps its last generated frames here, per slot,
  for the side-by-side rollout videos and video-quality scores.

And two optional methods (the runner looks them up, so a duck-typed policy may leave them out):

- ``needs_frame(slot)``: whether the policy will read the camera frames of that slot's next observation. The
  runner renders only frames someone reads (the policy, a filmed episode, a video score); between them the
  observation carries the slot's previous frames. A policy that replans every few steps from the current frame
  says False in between; the default, True, renders every step.
- ``bind_protocol(protocol)``: called once, before any rollout, with the protocol about to be run; a policy
  whose identity depends on it sets ``checkpoint_hash`` there (the scripted expert names the expert versions
  the protocol's tasks get). The default does nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np



def sha256_file(path: Path) -> str:
    """SHA-256 of one file's contents (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_dir(path: Path) -> str:
    """Hash of every file under ``path`` (relative names and contents), so any change to weights,
    config or normalisation statistics changes it: a checkpoint's identity (``checkpoint_hash``), a
    pretrained model's."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()

class Policy:
    """Base class of every policy the runner drives: override :meth:`act` (and :meth:`reset` if the policy
    keeps per-slot state)."""

    spec: str = ""
    checkpoint_hash: str = ""
    privileged: bool = False
    config: Any = None
    training_record: dict | None = None
    generated: dict | None = None

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        """A new episode starts in the slots ``env_ids`` (``None``: all)."""

    def act(self, obs: dict[str, Any], infos: list[dict[str, Any]]) -> np.ndarray:
        raise NotImplementedError

    def needs_frame(self, slot: int) -> bool:
        """Whether the next :meth:`act` call reads slot ``slot``'s camera frames (False lets the runner skip
        rendering them; the observation then holds the slot's previous frames). Default: always."""
        return True

    def bind_protocol(self, protocol: Any) -> None:
        """Called by the runner once, before any rollout, with the protocol it will run. Default: nothing."""
