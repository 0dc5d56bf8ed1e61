"""The vp_envs contract in one base class; each suite (``MetaWorldEnv``, ``RobosuiteEnv``) keeps only its
simulator hooks, as Gymnasium's ``MujocoEnv`` does for its tasks.

The base owns everything both suites share: argument checks, the split and its factors, episode seeding,
the renderer and the perceptual factors it applies at reset, step counting and episode ends, the observation
dict and the ``info`` dict. A suite implements:

==========================  ==================================================================================
``task_instructions()``     (static) task name -> instruction sentence
``_reset_sim(seed)``        reset the simulator to episode ``seed`` (the ``position`` split's redraws included)
``_sim_step(action)``       advance one step with a clipped action; return ``(reward, success)``
``_state()``                the full-state vector (``state="full"``); ``proprio`` is its first ``proprio_dim``
``_privileged()``           ``info["privileged_state"]``
``_avoid_points()``         (N, 3) world points distractors must keep clear of
``_close_sim()``            release the simulator
==========================  ==================================================================================

and sets, in its ``__init__`` before calling :meth:`_finish_init`, ``_model``/``_data`` (the MuJoCo model and
data the renderer draws), its class attributes ``suite``, ``action_dim``, ``proprio_dim``,
``shared_state_dims`` and ``action_doc`` (what the action's entries mean, for the shape error) and the
classmethod ``privileged_dim()``; :func:`vp_envs.suite_spec` reads them, so no other package hard-codes a
suite's sizes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vp_envs.factors import apply_factors
from vp_envs.rendering import RenderOptions
from vp_envs.splits import episode_seed, load_splits

STATE_MODES = ("proprio", "full")
MAX_POSITION_REDRAWS = 100


class SuiteEnv(gym.Env):
    """Base class of the vp_envs suites (see the module docstring for the hooks)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    suite: str = ""
    action_dim: int = 0
    proprio_dim: int = 0
    action_doc: str = ""
    shared_state_dims: dict = {}  # state modes other than proprio whose size every task shares
    state_limit: float = 10.0  # metres / radians / unit quaternion entries never get near this

    @staticmethod
    def task_instructions() -> dict[str, str]:
        raise NotImplementedError

    @classmethod
    def privileged_dim(cls) -> int:
        """One size for ``info["privileged_state"]`` over the suite's tasks (the largest where they differ)."""
        raise NotImplementedError

    def __init__(self, task: str, split: str, level: int | None, cameras: tuple[str, ...], width: int,
                 height: int, state: str, max_episode_steps: int | None, terminate_on_success: bool,
                 render_options: RenderOptions | dict | None, render_mode: str | None):
        tasks = self.task_instructions()
        if task not in tasks:
            raise ValueError(f"unknown {self.suite_title} task {task!r}; known: {', '.join(tasks)}")
        self.splits = load_splits(self.suite)
        self.split_spec = self.splits.split(split)
        self.factors = self.split_spec.factors(level)
        if state not in STATE_MODES:
            raise ValueError(f"unknown state mode {state!r}; known: {', '.join(STATE_MODES)}")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise ValueError(f"width and height must be positive ints; got {width!r} x {height!r}")
        if max_episode_steps is not None and int(max_episode_steps) <= 0:
            raise ValueError(f"max_episode_steps must be positive (or None: no limit); got {max_episode_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}; known: rgb_array")
        self.render_options = RenderOptions(**render_options) if isinstance(render_options, dict) \
            else (render_options or RenderOptions())
        self.task, self.split = task, split
        self.level = self.split_spec.default_level if level is None else level
        self.instruction = tasks[task]
        self.cameras = tuple(cameras)
        self.width, self.height = width, height
        self.state_mode = state
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self._seed: int | None = None
        self._steps = 0
        self._renderer = None
        self._last_frames: dict[str, np.ndarray] = {}
        # One-shot: False makes the next step() skip rendering and return the previous frames (the evaluation
        # runner sets it for steps whose frames nobody reads; see eval.runner). Reset always renders.
        self.render_next = True

    @property
    def suite_title(self) -> str:
        return {"metaworld": "Meta-World"}.get(self.suite, self.suite)

    def _finish_init(self, renderer, state_low: np.ndarray, state_high: np.ndarray, table_height: float,
                     table_region, geom_groups: dict[str, np.ndarray], object_bodies: np.ndarray) -> None:
        """Spaces and the scene the factors act on, once the suite has built its simulator and renderer."""
        self._renderer = renderer
        self._table_height, self._table_region = table_height, table_region
        self._geom_groups, self._object_bodies = geom_groups, object_bodies
        obs_spaces: dict[str, spaces.Space] = {"state": spaces.Box(state_low, state_high, dtype=np.float32)}
        if self.cameras:
            obs_spaces["pixels"] = spaces.Dict(
                {c: spaces.Box(0, 255, (self.height, self.width, 3), np.uint8) for c in self.cameras})
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)

    # ------------------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "episode" in options:
            seed = episode_seed(self.suite, self.task, self.split, int(options["episode"]))
        elif seed is None:
            seed = int(self.np_random.integers(2**32))
        self._seed = int(seed)
        self._reset_sim(self._seed)
        self._steps = 0
        self.render_next = True
        if self._renderer is not None:
            self._renderer.reset_visuals(self._model)
            scene = self._renderer.scene(self._geom_groups, self._object_bodies, self._table_height,
                                         self._table_region, self._avoid_points())
            apply_factors(scene, self.factors, self._seed)
            self._renderer.commit(scene)
        return self._observation(), self._info(False)

    def step(self, action):
        if self._seed is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, dtype=self._action_dtype), -1.0, 1.0)
        if action.shape != (self.action_dim,):
            raise ValueError(f"{self.suite_title} actions are {self.action_dim}-D ({self.action_doc}); "
                             f"got shape {action.shape}")
        reward, success = self._sim_step(action)
        self._steps += 1
        terminated = success and self.terminate_on_success
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps and not terminated
        obs = self._observation()
        self.render_next = True
        return obs, float(reward), terminated, truncated, self._info(success)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if not self.cameras:
            raise ValueError("render() needs at least one camera; this env was made with cameras=()")
        return self._last_frames.get(self.cameras[0])

    def close(self):
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None
        self._close_sim()

    # ------------------------------------------------------------------------------------------ shared
    _action_dtype = np.float32

    def _observation(self) -> dict[str, Any]:
        state = self._state()
        if self.state_mode == "proprio":
            state = state[:self.proprio_dim]
        obs: dict[str, Any] = {"state": np.clip(state, -self.state_limit, self.state_limit).astype(np.float32)}
        if self._renderer is not None:
            if self.render_next or not self._last_frames:
                self._last_frames = self._renderer.render(self._data)
            obs["pixels"] = self._last_frames
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        return {"success": bool(success), "instruction": self.instruction, "task": self.task, "split": self.split,
                "level": self.level, "seed": self._seed, "privileged_state": self._privileged()}

    @staticmethod
    def _redraw_outside_training(seed: int, reset_with, outside) -> Any:
        """The ``position`` split's start: reset with seeds derived deterministically from ``seed`` until
        ``outside()`` says at least one randomised coordinate left its training range (at most
        ``MAX_POSITION_REDRAWS`` tries); returns the last ``reset_with(seed)`` result."""
        for attempt in range(MAX_POSITION_REDRAWS):
            result = reset_with((seed + attempt * 7919) % 2**32)
            if outside():
                break
        return result

    # ------------------------------------------------------------------------------------------ hooks
    def _reset_sim(self, seed: int) -> None:
        raise NotImplementedError

    def _sim_step(self, action: np.ndarray) -> tuple[float, bool]:
        raise NotImplementedError

    def _state(self) -> np.ndarray:
        raise NotImplementedError

    def _privileged(self) -> np.ndarray:
        raise NotImplementedError

    def _avoid_points(self) -> np.ndarray:
        raise NotImplementedError

    def _close_sim(self) -> None:
        raise NotImplementedError
