"""Training data for policies: windows of observations and action chunks from vp_envs datasets.

A sample at step ``t`` of an episode (``n_obs`` observation steps, ``horizon`` action steps)::

    observation steps   t-n_obs+1 ... t            (clamped to the first frame at the episode start)
    action steps        t-n_obs+1 ... t-n_obs+horizon   (past the end: the last action, flagged as pad)

which is Diffusion Policy's window: the chunk starts with the actions taken alongside the observation
history, and the policy executes from index ``n_obs-1``. With ``n_obs=horizon=1`` it is plain BC's
(observation t, action t).

Episodes are decoded into memory once (a 25-demo, 5-task, 64x64 dataset is about 150 MB) so the loader
never decompresses in the training loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vp_envs.dataset import DatasetError, open_dataset


def _read_episodes(roots, tasks, episodes_per_task, check):
    """Yield ``(instruction, episode)`` for every episode of ``roots`` (in dataset order), shared by the
    datasets below. ``tasks`` keeps only those tasks; ``episodes_per_task`` keeps the first N episodes of each
    task in each directory (the demonstration budget of a sample-efficiency run: the same N episodes for every
    seed); ``check(task_file)`` raises :class:`DatasetError` for a file the dataset cannot use."""
    if episodes_per_task is not None and episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be >= 1 (or None for all), got {episodes_per_task}")
    for root in roots:
        for task, tf in open_dataset(Path(root)).items():
            if tasks is not None and task not in tasks:
                continue
            try:
                check(tf)
                instruction = str(tf.attrs["instruction"])
                n = len(tf) if episodes_per_task is None else min(len(tf), episodes_per_task)
                for i in range(n):
                    yield instruction, tf.episode(i)
            finally:
                tf.close()


@dataclass
class MinMax:
    """Per-dimension range used to scale a quantity to [-1, 1]."""

    low: np.ndarray
    high: np.ndarray

    def normalize(self, x):
        low, span = self._tensors(x)
        return (x - low) / span * 2 - 1

    def unnormalize(self, x):
        low, span = self._tensors(x)
        return (x + 1) / 2 * span + low

    def _tensors(self, x):
        span = np.maximum(self.high - self.low, 1e-6)  # constant dimensions map to -1, not NaN
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.low, dtype=x.dtype, device=x.device),
                    torch.as_tensor(span, dtype=x.dtype, device=x.device))
        return self.low, span

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "MinMax":
        return cls(np.asarray(d["low"], np.float32), np.asarray(d["high"], np.float32))


class DemoDataset(torch.utils.data.Dataset):
    """Windows of (images, state, instruction, action chunk) from one or more dataset directories.

    Args:
        roots: dataset directories written by ``vp-data``.
        camera: camera key to read.
        n_obs: observation steps per sample.
        horizon: action steps per sample.
        tasks: keep only these tasks (default: all in the datasets).
        episodes_per_task: keep the first N episodes of each task in each directory (default: all).
        state_source: ``state`` (the recorded observation state) or ``privileged`` (the recorded
            ``privileged_state``: the simulator's full state, for privileged-state ceilings).
        use_image: False skips the frames (state-only policies); ``image`` items are then empty.
    """

    def __init__(self, roots: list[str | Path], camera: str = "corner2", n_obs: int = 1, horizon: int = 1,
                 tasks: list[str] | None = None, episodes_per_task: int | None = None,
                 state_source: str = "state", use_image: bool = True):
        self.camera, self.n_obs, self.horizon = camera, n_obs, horizon
        self.use_image = use_image
        self.frames, self.states, self.actions, self.text_ids = [], [], [], []
        self.instructions: list[str] = []

        def check(tf):
            if not tf.attrs.get("has_actions", True):
                raise DatasetError(f"{tf.path} is action-free video; a policy needs actions")
            if use_image and camera not in tf.attrs["cameras"]:
                raise DatasetError(f"{tf.path} has cameras {tf.attrs['cameras']}, not {camera!r}")

        for instruction, ep in _read_episodes(roots, tasks, episodes_per_task, check):
            if instruction not in self.instructions:
                self.instructions.append(instruction)
            self.frames.append(ep.frames[camera] if use_image else np.zeros((len(ep.state), 0), np.uint8))
            self.states.append((ep.privileged_state if state_source == "privileged" else ep.state).astype(np.float32))
            self.actions.append(ep.actions.astype(np.float32))
            self.text_ids.append(self.instructions.index(instruction))
        self.manifests = {str(r): json.loads((Path(r) / "manifest.json").read_text()) for r in roots}
        if state_source == "privileged":  # tasks of one suite differ in size (robosuite): zero-pad each to the
            # suite's one size, as the evaluation runner pads info["privileged_state"] (eval/slot_env.py)
            from vp_envs import suite_spec

            suites = {m.get("settings", {}).get("suite", "metaworld") for m in self.manifests.values()}
            spec = max((suite_spec(s) for s in suites), key=lambda sp: sp.privileged_dim)
            self.states = [spec.pad_privileged(x).astype(np.float32) for x in self.states]
        if not self.actions:
            raise DatasetError(f"no episodes with actions in {[str(r) for r in roots]}"
                               + (f" for tasks {tasks}" if tasks else ""))
        self.index = [(e, t) for e, a in enumerate(self.actions) for t in range(len(a))]
        all_actions = np.concatenate(self.actions)
        all_states = np.concatenate(self.states)
        self.stats = {"action": MinMax(all_actions.min(0), all_actions.max(0)),
                      "state": MinMax(all_states.min(0), all_states.max(0))}
        self.text_emb: torch.Tensor | None = None

    @property
    def state_dim(self) -> int:
        return self.states[0].shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions[0].shape[1]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.frames[0].shape[1:]

    def set_text_embeddings(self, emb: np.ndarray) -> None:
        """Embeddings of ``self.instructions`` (row i for instruction i)."""
        self.text_emb = torch.as_tensor(emb, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.index[i]
        T = len(self.actions[e])
        obs_t = np.clip(np.arange(t - self.n_obs + 1, t + 1), 0, T)
        act_t = np.arange(t - self.n_obs + 1, t - self.n_obs + 1 + self.horizon)
        pad = act_t >= T
        act_t = np.clip(act_t, 0, T - 1)
        item = {
            "image": (torch.from_numpy(self.frames[e][obs_t]).permute(0, 3, 1, 2) if self.use_image
                      else torch.zeros(len(obs_t), 0, dtype=torch.uint8)),  # (n_obs, 3, H, W) uint8
            "state": self.stats["state"].normalize(torch.from_numpy(self.states[e][obs_t])),
            "action": self.stats["action"].normalize(torch.from_numpy(self.actions[e][act_t])),
            "action_is_pad": torch.from_numpy(pad),
        }
        if self.text_emb is not None:
            item["text"] = self.text_emb[self.text_ids[e]]
        return item


class VideoDataset(torch.utils.data.Dataset):
    """Samples for Video Policy: the current frame of each camera, the future frames the video model must
    generate (one every ``frame_stride`` steps), and the action chunk when the episode has actions.

    Action-free episodes (``vp-data --no-actions``) are kept: they train the autoencoder and the video model;
    :meth:`indices` leaves them out of the action stages. A sample at step ``t``::

        conditioning frame   t
        generated frames     t+s, t+2s, ..., t+F*s       (clamped to the last frame: the scene at rest)
        action chunk         t ... t+horizon-1           (past the end: the last action, flagged as pad)

    ``latents`` (per episode: (cameras, T+1, C, h, w)) is filled by the policy from its autoencoder
    (:meth:`VideoPolicy.prepare_dataset`), after which samples carry latents, not re-encoded frames.
    """

    def __init__(self, roots: list[str | Path], cameras: tuple[str, ...] = ("corner2",), horizon: int = 16,
                 frame_stride: int = 4, tasks: list[str] | None = None, episodes_per_task: int | None = None,
                 require_actions: bool = True):
        self.cameras, self.horizon, self.frame_stride = tuple(cameras), horizon, frame_stride
        self.num_frames = horizon // frame_stride
        self.frames, self.states, self.actions, self.text_ids = [], [], [], []
        self.instructions: list[str] = []
        self.latents: list[torch.Tensor] | None = None

        def check(tf):
            missing = [c for c in self.cameras if c not in tf.attrs["cameras"]]
            if missing:
                raise DatasetError(f"{tf.path} has cameras {tf.attrs['cameras']}, not {missing}")

        for instruction, ep in _read_episodes(roots, tasks, episodes_per_task, check):
            if instruction not in self.instructions:
                self.instructions.append(instruction)
            self.frames.append(np.stack([ep.frames[c] for c in self.cameras]))  # (cams, T+1, H, W, 3)
            self.states.append(ep.state.astype(np.float32))
            self.actions.append(None if ep.actions is None else ep.actions.astype(np.float32))
            self.text_ids.append(self.instructions.index(instruction))
        self.manifests = {str(r): json.loads((Path(r) / "manifest.json").read_text()) for r in roots}
        if not self.frames:
            raise DatasetError(f"no episodes in {[str(r) for r in roots]}" + (f" for tasks {tasks}" if tasks else ""))
        labelled = [a for a in self.actions if a is not None]
        if not labelled and require_actions:
            raise DatasetError(f"no episodes with actions in {[str(r) for r in roots]}: the action head needs some")
        self.index = [(e, t) for e, f in enumerate(self.frames) for t in range(f.shape[1] - 1)]
        self.labelled = np.array([self.actions[e] is not None for e, _ in self.index])
        self.stats: dict[str, MinMax] = {}  # all action-free (require_actions=False): the caller sets a policy's
        if labelled:
            acts = np.concatenate(labelled)
            states = np.concatenate([s for s, a in zip(self.states, self.actions) if a is not None])
            self.stats = {"action": MinMax(acts.min(0), acts.max(0)), "state": MinMax(states.min(0), states.max(0))}
        self.text_emb: torch.Tensor | None = None

    state_dim = DemoDataset.state_dim
    image_shape = property(lambda self: self.frames[0].shape[2:])
    set_text_embeddings = DemoDataset.set_text_embeddings

    @property
    def action_dim(self) -> int:
        return len(self.stats["action"].low)

    def indices(self, stage: str) -> np.ndarray:
        """Sample indices a training stage draws from (action stages: labelled episodes only)."""
        return np.flatnonzero(self.labelled) if stage in ("action", "joint") else np.arange(len(self.index))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.index[i]
        last = self.frames[e].shape[1] - 1
        frame_t = np.minimum(t + self.frame_stride * np.arange(self.num_frames + 1), last)
        item = {"image": torch.from_numpy(self.frames[e][:, t]).permute(0, 3, 1, 2),  # (cams, 3, H, W) uint8
                "state": self.stats["state"].normalize(torch.from_numpy(self.states[e][t:t + 1])),
                "has_action": torch.tensor(self.actions[e] is not None)}
        if self.latents is not None:
            item["latents"] = self.latents[e][:, frame_t]  # (cams, 1+F, C, h, w): current + generated
        if self.actions[e] is not None:
            T = len(self.actions[e])
            act_t = np.arange(t, t + self.horizon)
            item["action"] = self.stats["action"].normalize(torch.from_numpy(self.actions[e][np.minimum(act_t, T - 1)]))
            item["action_is_pad"] = torch.from_numpy(act_t >= T)
        else:
            item["action"] = torch.zeros(self.horizon, self.action_dim)
            item["action_is_pad"] = torch.ones(self.horizon, dtype=torch.bool)
        if self.text_emb is not None:
            item["text"] = self.text_emb[self.text_ids[e]]
        return item
