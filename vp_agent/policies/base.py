"""The torch base of trained policies (:class:`TorchPolicy`, implementing :class:`~vp_agent.policies.interface.Policy`), and what they share: observation handling, the action queue
(chunking with a receding horizon), normalisation, and save / load.

Every policy is called like a scripted expert: ``action = policy.act(obs, info)``, with one env's
observation or a batch from a vector env (leading batch dimension, ``info["instruction"]`` an array).
Internally a policy predicts a chunk of ``horizon`` actions from ``n_obs`` observation steps and executes
``n_action_steps`` of them before it predicts again::

    observation steps   |o|o|                        n_obs = 2 (the last two observations)
    predicted actions   |a|a|a|a|a|a|a|a|...|a|      horizon = 16, starting with the action at the first
    executed actions      |e|e|e|e|e|e|e|e|          observation step; execution starts at index n_obs-1
                                                     and runs for n_action_steps = 8, then replan

(with ``n_obs = horizon = n_action_steps = 1`` this is plain per-step BC).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vp_agent.data import DemoDataset, MinMax
from vp_agent.policies.interface import Policy
from vp_agent.policies.modules import ImageEncoder, center_crop, random_crop, seeded_noise
from vp_agent.text import make_text_encoder

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the path and the reason."""


class TorchPolicy(Policy, nn.Module):
    """Base class of trained policies. Subclasses set ``name`` and ``config_class`` and implement
    ``predict_action_chunk`` (normalised batch -> normalised (B, horizon, A) actions) and ``forward``
    (batch -> {"loss": ...}). Training hooks with defaults for single-stage policies (overridden by Video
    Policy): :meth:`training_stages`, :meth:`make_dataset`, :meth:`init_pretrained`, :meth:`set_stage`,
    :meth:`prepare_dataset`, :meth:`trainable_parameters`.

    Mind the name: ``training`` is torch's train/eval flag; how a checkpoint was trained is
    ``training_record``. (Setting ``policy.training`` to that record once left every policy that ``vp-eval``
    loaded in training mode: random crops and conditioning dropout at inference.)"""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object

    def __init__(self, config, stats: dict[str, MinMax], state_dim: int, action_dim: int):
        super().__init__()
        self.config = config
        self.stats = stats
        self.state_dim, self.action_dim = state_dim, action_dim
        self.text_encoder = make_text_encoder(config.text_encoder)
        self._history: dict[int, deque] = {}  # env slot -> last n_obs (image, state)
        self._queues: dict[int, deque] = {}   # env slot -> actions still to execute
        self._chunk_slots: list[int] | None = None  # env slots of the chunk being predicted (set by act)

    # ------------------------------------------------------------------------------------ to implement
    def predict_action_chunk(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode_observations(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_obs * (feature_dim [+ state_dim]) + text_dim) conditioning vector from a batch.

        Images are random-cropped in training and centre-cropped at inference (``config.crop``); subclasses
        that use it define ``self.encoder`` (an image encoder to ``config.feature_dim``).
        """
        parts = []
        if self.uses_image:
            b, n = batch["image"].shape[:2]
            images = batch["image"].flatten(0, 1).float() / 255.0
            if self.config.crop:
                images = (random_crop(images, self.config.crop) if self.training
                          else center_crop(images, self.config.crop))
            parts.append(self.encoder(images).view(b, n, -1))
        if self.config.use_state:
            parts.append(batch["state"])
        feats = torch.cat(parts, -1)
        return torch.cat([feats.flatten(1), batch["text"]], -1)

    def build_observation_encoder(self) -> int:
        """Make ``self.encoder`` (an :class:`ImageEncoder`, or ``None`` for a state-only policy) and return the
        size of :meth:`encode_observations`' output for this config."""
        c = self.config
        self.encoder = ImageEncoder(tuple(c.encoder_channels), out_dim=c.feature_dim) if c.use_image else None
        per_step = (c.feature_dim if c.use_image else 0) + (self.state_dim if c.use_state else 0)
        return c.n_obs * per_step + self.text_encoder.dim

    @property
    def uses_image(self) -> bool:
        """Whether the policy reads a camera (False for state-only policies such as ``bc_state``)."""
        return bool(getattr(self.config, "use_image", True))

    @property
    def privileged(self) -> bool:
        """True when the policy reads the simulator's full state (a ceiling, not a contender): the evaluation
        runner then passes ``info["privileged_state"]``, which it hides from every other policy."""
        return getattr(self.config, "state_source", "state") == "privileged"

    # ------------------------------------------------------------------------------- training hooks
    @classmethod
    def training_stages(cls, config) -> list[tuple[str, int, int, float]] | None:
        """``(stage, steps, batch size, lr)`` in training order for a policy trained in stages (Video
        Policy), or ``None`` (the default): one stage of ``vp-train``'s ``steps`` and ``batch_size`` at the
        config's ``lr``."""
        return None

    @classmethod
    def make_dataset(cls, config, roots, tasks=None, episodes_per_task=None):
        """The training dataset for ``config`` from the dataset directories ``roots``."""
        return DemoDataset(list(roots), camera=config.camera, n_obs=config.n_obs, horizon=config.horizon,
                           tasks=tasks, episodes_per_task=episodes_per_task,
                           state_source=getattr(config, "state_source", "state"),
                           use_image=getattr(config, "use_image", True))

    def init_pretrained(self) -> None:
        """Load pretrained weights the config names into a freshly built policy (``vp-train`` calls it once,
        before the first stage; loading a checkpoint does not, its own weights replace them). Default: none."""

    def set_stage(self, stage: str) -> None:
        """Enter training stage ``stage`` (staged policies freeze what the stage does not train)."""

    def prepare_dataset(self, dataset, cache_dir=None) -> None:
        """Precompute what a stage trains on (Video Policy: the frames' latents); nothing by default."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates in the current stage (default: all)."""
        return list(self.parameters())

    # --------------------------------------------------------------------------------------- acting
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def needs_frame(self, slot: int) -> bool:
        """Whether the next :meth:`act` for ``slot`` reads its camera frames: a frame enters the observation
        history on every call and is read when a chunk is predicted, i.e. when it is one of the ``n_obs`` frames
        before the slot's action queue runs dry. Between chunks the runner then skips rendering."""
        return self.uses_image and len(self._queues.get(int(slot), ())) < self.config.n_obs

    def reset(self, env_ids: list[int] | None = None) -> None:
        """Forget observation history and queued actions (of some env slots, or all)."""
        if env_ids is None:
            self._history, self._queues = {}, {}
            return
        for i in env_ids:
            self._history.pop(int(i), None)
            self._queues.pop(int(i), None)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], info: dict[str, Any] | list[dict[str, Any]]) -> np.ndarray:
        """Next action(s) for one env (obs without batch dim) or a batch of envs.

        ``info`` is the env's info dict (one env), a vector env's info dict (``info["instruction"]`` an
        array), or a list of per-env dicts; a list may name each row's env slot in ``info["slot"]`` when
        the batch holds only some of the envs (as ``vp-eval`` does when episodes end at different times).
        """
        single = np.asarray(obs["state"]).ndim == 1
        if single:
            obs = {"state": obs["state"][None], "pixels": {k: v[None] for k, v in obs.get("pixels", {}).items()}}
            info = [info]
        batch_size = len(obs["state"])
        if isinstance(info, dict):
            instructions = [str(s) for s in info["instruction"]]
            slots = list(range(batch_size))
        else:
            instructions = [str(i["instruction"]) for i in info]
            slots = [int(i.get("slot", row)) for row, i in enumerate(info)]
        cameras = tuple(getattr(self.config, "cameras", ()) or (self.config.camera,))
        if not self.uses_image:
            image = np.zeros((batch_size, 0), np.uint8)
        elif len(cameras) == 1:
            image = obs["pixels"][cameras[0]]
        else:  # several cameras: (B, cams, H, W, 3)
            image = np.stack([obs["pixels"][c] for c in cameras], axis=1)
        if self.privileged:
            rows = [info["privileged_state"][r] for r in range(batch_size)] if isinstance(info, dict) \
                else [i["privileged_state"] for i in info]
            states = np.stack([np.asarray(r, np.float32)[:self.state_dim] for r in rows])
        else:
            states = np.asarray(obs["state"], np.float32)
        need = [row for row, slot in enumerate(slots) if not self._queues.setdefault(slot, deque())]
        # restored if the prediction raises, so that a retry does not see this observation twice
        saved = {slot: deque(self._history[slot], maxlen=self.config.n_obs) for slot in slots
                 if slot in self._history} if need else {}
        for row, slot in enumerate(slots):
            history = self._history.setdefault(slot, deque(maxlen=self.config.n_obs))
            history.append((image[row], states[row]))
            while len(history) < self.config.n_obs:  # episode start: repeat the first frame
                history.appendleft(history[0])
        if need:
            self._chunk_slots = [slots[r] for r in need]  # which env slots this chunk is for
            batch = self._make_batch([slots[r] for r in need], [instructions[r] for r in need])
            seeds = _noise_seeds(info, need)
            if seeds is not None:
                batch["noise_seed"] = seeds
            try:
                chunk = self.predict_action_chunk(batch)
            except Exception:
                for slot in slots:
                    if slot in saved:
                        self._history[slot] = saved[slot]
                    else:
                        self._history.pop(slot, None)
                raise
            actions = self.stats["action"].unnormalize(chunk).cpu().numpy()
            start = self.config.n_obs - 1
            for k, row in enumerate(need):
                self._queues[slots[row]].extend(actions[k, start:start + self.config.n_action_steps])
        out = np.stack([self._queues[slot].popleft() for slot in slots]).astype(np.float32)
        return out[0] if single else out

    def initial_noise(self, batch: dict[str, Any], shape: tuple[int, ...], device) -> torch.Tensor:
        """Starting noise (B, *shape) of a sampler. With ``batch["noise_seed"]`` (set by :meth:`act` from the
        episode's seed and step) each row draws from its own generator, so a chunk's noise depends only on
        the episode and the step: not on the batch it shares, the number of env slots or a resume."""
        seeds = batch.get("noise_seed")
        if seeds is None:
            return torch.randn(len(batch["text"]), *shape, device=device)
        return seeded_noise(seeds, shape, device=device)[0]

    def _make_batch(self, slots: list[int], instructions: list[str]) -> dict[str, torch.Tensor]:
        images = np.stack([[h[0] for h in self._history[s]] for s in slots])  # (B, n_obs, [cams,] H, W, 3)
        states = np.stack([[h[1] for h in self._history[s]] for s in slots])
        return {
            "image": torch.from_numpy(images).movedim(-1, -3).to(self.device),
            "state": self.stats["state"].normalize(torch.from_numpy(states)).to(self.device),
            "text": torch.from_numpy(self.text_encoder.encode(instructions)).to(self.device),
        }

    # ------------------------------------------------------------------------------------ save / load
    def save(self, directory: str | Path, extra: dict | None = None, extra_files: dict | None = None) -> None:
        """Write config.json, model.safetensors and stats.json to ``directory`` atomically.

        ``extra_files`` maps file names to callables that write them (given the path) before the
        directory is swapped in, so a checkpoint is always complete or absent.
        """
        def fill(tmp: Path) -> None:
            meta = {"format": CHECKPOINT_FORMAT, "policy": self.name, "config": dataclasses.asdict(self.config),
                    "state_dim": self.state_dim, "action_dim": self.action_dim, **(extra or {})}
            (tmp / "config.json").write_text(json.dumps(meta, indent=2, default=str))
            (tmp / "stats.json").write_text(json.dumps({k: v.to_dict() for k, v in self.stats.items()}))
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                      str(tmp / "model.safetensors"))
            for fname, write in (extra_files or {}).items():
                write(tmp / fname)

        write_dir_atomically(directory, fill)


def write_dir_atomically(directory: str | Path, fill) -> Path:
    """Build a folder with ``fill(tmp)`` in ``<directory>.tmp`` and swap it in for ``directory``, so the folder
    is always complete or absent (the old one is replaced only once the new one is written)."""
    directory = Path(directory)
    finish_dir_swap(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
    return directory


def finish_dir_swap(directory: str | Path) -> Path:
    """Complete a swap of :func:`write_dir_atomically` that a kill cut between its two renames: the folder is
    absent, the previous one sits at ``<directory>.old`` and the new, complete one at ``<directory>.tmp`` (the
    old folder is moved aside only once the new one is fully written). Readers call this first, so a run killed
    at that instant resumes from its newest checkpoint instead of from scratch. A no-op otherwise."""
    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    if directory.exists() or not old.exists():
        return directory
    tmp = directory.with_name(directory.name + ".tmp")
    os.replace(tmp if tmp.is_dir() else old, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _noise_seeds(info, rows: list[int]) -> list[int] | None:
    """Per-row seeds of a chunk's sampling noise from the episode's ``seed`` and ``steps`` in ``info``
    (``None`` when the caller gives neither, e.g. a bare env loop without them)."""
    def field(name, row):
        if isinstance(info, dict):
            value = info.get(name)
            return None if value is None else np.asarray(value).reshape(-1)[row]
        return info[row].get(name)

    seeds = []
    for row in rows:
        seed, steps = field("seed", row), field("steps", row)
        if seed is None or steps is None:
            return None
        seeds.append((int(seed) * 1_000_003 + int(steps) * 7_919 + 1) % 2**63)
    return seeds


def load_policy(directory: str | Path, device: str = "cpu") -> TorchPolicy:
    """Load any policy saved with :meth:`TorchPolicy.save`; errors name the path and what is wrong."""
    from vp_agent.policies import registry

    directory = finish_dir_swap(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    for name in ("config.json", "stats.json", "model.safetensors"):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory} is not a policy checkpoint: {name} is missing")
    try:
        meta = json.loads((directory / "config.json").read_text())
        stats = {k: MinMax.from_dict(v) for k, v in json.loads((directory / "stats.json").read_text()).items()}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory}: config.json or stats.json is corrupt: {exc}") from exc
    if meta.get("policy") not in registry.POLICIES:
        raise CheckpointError(f"{directory}: unknown policy {meta.get('policy')!r}; "
                              f"known: {', '.join(registry.POLICIES)}")
    cls = registry.POLICIES[meta["policy"]]
    try:
        config = cls.config_class(**meta["config"])
    except TypeError as exc:
        raise CheckpointError(f"{directory}: config does not fit {cls.config_class.__name__}: {exc}") from exc
    policy = cls(config, stats, meta["state_dim"], meta["action_dim"])
    try:
        weights = load_file(str(directory / "model.safetensors"), device=device)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise CheckpointError(f"{directory}/model.safetensors is unreadable: {exc}") from exc
    try:
        policy.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory}/model.safetensors does not match the {cls.name} config: "
                              f"{str(exc).splitlines()[0]}") from exc
    return policy.to(device).eval()
