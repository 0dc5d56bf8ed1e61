"""One *slot* of the evaluation vector: a Gymnasium env that plays whichever protocol episode it is given.

Why a slot and not the task's env directly: a protocol mixes tasks and splits, and each episode must start
from its frozen seed ``(task, split, episode index)``. Gymnasium's vector envs reset every sub-env with the
same ``options`` and autoreset them with no options at all, so neither can say "slot 3, start episode 17 of
pick-place under camera". A slot can: the runner assigns episodes with ``set_attr("next_episode", [...])``
(one value per slot; ``None`` keeps the slot's current episode going) and calls ``reset()``; only slots
with a new assignment start it. The slot then steps its episode and reports everything in ``info``:

- ``terminated``/``truncated`` returned to the vector env are always False, so it never autoresets a slot
  behind the runner's back; the episode's end is ``info["done"]``;
- a finished or idle slot ignores actions and returns its last observation (cheap: no physics, no render);
- ``set_attr("render_next", [...])`` (one bool per slot, for the next ``step`` only) lets the runner skip
  rendering frames nobody reads: that step's ``pixels`` are then the slot's previous frames;
- an exception from the simulator is caught and returned as ``info["error"]`` (the traceback's last line
  and type), ending that episode only, so one bad episode never takes down a worker process or the run.

The same class runs in-process (``SyncVectorEnv``) or in worker processes (``AsyncVectorEnv`` with
``context="spawn"``), so both paths give identical rows.
"""

from __future__ import annotations

import os
import traceback
from collections import OrderedDict
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

import vp_envs  # noqa: E402

IDLE = "idle"  # assign this to stop a slot's episode (e.g. when the policy failed on it)
ENV_CACHE = 2  # inner envs kept per slot: episodes come cell by cell, so one is reused, one is the next cell


def format_error(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, short enough for a parquet cell."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" [at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}]" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class SlotEnv(gym.Env):
    """A vector slot playing protocol episodes; see the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, suite: str, env_kwargs: dict[str, Any]):
        self.suite = suite
        self.env_kwargs = dict(env_kwargs)
        cams = tuple(self.env_kwargs.get("cameras", ()))
        h, w = self.env_kwargs["height"], self.env_kwargs["width"]
        spec = self._spec = vp_envs.suite_spec(suite)
        state_dim = spec.state_dims[self.env_kwargs.get("state", "proprio")]
        obs = {"state": spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if cams:
            obs["pixels"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cams})
        # Loose state bounds on purpose: tasks differ in their bounds and every slot must share one space.
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        self.next_episode: Any = None
        self.render_next = True  # one-shot: False skips rendering at the next step (see the module docstring)
        self._envs: OrderedDict[tuple, Any] = OrderedDict()
        self._env = None
        self._episode: tuple | None = None
        self._obs = self.observation_space.sample()
        self._zero_obs()
        self._reset_counters()
        self._last_privileged = np.zeros(spec.privileged_dim)
        self._last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ helpers
    def _zero_obs(self):
        self._obs["state"] = np.zeros_like(self._obs["state"])
        for cam in self._obs.get("pixels", {}):
            self._obs["pixels"][cam] = np.zeros_like(self._obs["pixels"][cam])

    def _reset_counters(self):
        self._done = True
        self._success = False
        self._return = 0.0
        self._steps = 0
        self._error = ""
        self._seed = -1
        self._reward = 0.0

    def _inner(self, task: str, split: str, level: int):
        key = (task, split, level)
        if key in self._envs:
            self._envs.move_to_end(key)
            return self._envs[key]
        import vp_envs

        env = vp_envs.make(f"vp/{self.suite}-{task}", split=split, level=level, **self.env_kwargs)
        self._envs[key] = env
        while len(self._envs) > ENV_CACHE:
            _, old = self._envs.popitem(last=False)
            old.close()
        return env

    def _info(self, env_info: dict | None = None) -> dict[str, Any]:
        task, split, level, index = self._episode if self._episode else ("", "", 0, -1)
        if env_info is not None:
            self._last_privileged = self._spec.pad_privileged(env_info["privileged_state"])
            self._last_info = env_info
        # Every key on every call, with fixed types: Gymnasium batches infos key by key.
        return {
            "active": self._episode is not None,
            "done": bool(self._done),
            "success": bool(self._success),
            "reward": float(self._reward),
            "return": float(self._return),
            "steps": int(self._steps),
            "error": self._error,
            "suite": self.suite,
            "task": task,
            "split": split,
            "level": int(level),
            "episode": int(index),
            "seed": int(self._seed),
            "instruction": str(self._last_info.get("instruction", "")),
            "privileged_state": self._last_privileged.copy(),
        }

    # ------------------------------------------------------------------------------------------ gym API
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        assigned, self.next_episode = self.next_episode, None
        if assigned is None:  # nothing new for this slot: keep its episode as it is
            return self._obs, self._info()
        self._reset_counters()
        if assigned == IDLE:
            self._episode = None
            self._zero_obs()
            return self._obs, self._info()
        task, split, level, index = assigned
        self._episode = (task, split, int(level), int(index))
        self._done = False
        try:
            env = self._inner(task, split, int(level))
            obs, info = env.reset(options={"episode": int(index)})
            self._seed = int(info["seed"])
            self._obs = obs
            return self._obs, self._info(info)
        except Exception as exc:  # the simulator failed to start this episode: record it, keep the slot
            self._done, self._error = True, format_error(exc)
            self._zero_obs()
            return self._obs, self._info()

    def step(self, action):
        if self._episode is None or self._done:
            self._reward = 0.0
            return self._obs, 0.0, False, False, self._info()
        render, self.render_next = self.render_next, True
        try:
            env = self._inner(*self._episode[:3])
            env.unwrapped.render_next = bool(render)
            obs, reward, terminated, truncated, info = env.step(np.asarray(action, np.float32))
        except Exception as exc:
            self._done, self._error, self._reward = True, format_error(exc), 0.0
            return self._obs, 0.0, False, False, self._info()
        self._obs = obs
        self._steps += 1
        self._reward = float(reward)
        self._return += float(reward)
        # Success means "reached at some step" (Meta-World's convention); with terminate_on_success the
        # episode also ends there.
        self._success = self._success or bool(info["success"])
        self._done = bool(terminated or truncated)
        return self._obs, float(reward), False, False, self._info(info)

    def close(self):
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def make_slot_env(suite: str, env_kwargs: dict[str, Any]) -> SlotEnv:
    """Picklable factory for ``AsyncVectorEnv`` (with ``functools.partial``)."""
    return SlotEnv(suite, env_kwargs)
