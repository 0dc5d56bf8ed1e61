"""vp_envs: one Gymnasium contract over Meta-World and robosuite with distribution-shift splits.

>>> import vp_envs, gymnasium as gym
>>> env = vp_envs.make("vp/metaworld-reach-v3", split="camera")          # or gym.make(...) with the same args
>>> obs, info = env.reset(options={"episode": 0})                        # seeded by (task, split, episode)
>>> expert = vp_envs.scripted_expert(env)
>>> obs, reward, terminated, truncated, info = env.step(expert(obs, info))

Ids are ``vp/<suite>-<task>``; :func:`list_envs` lists them and :func:`list_splits` the splits.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources

# MuJoCo picks its GL backend once, when it is first imported; every module here that imports it does so
# after this line. Importing vp_envs itself (datasets, splits, ids) does not import MuJoCo, so training
# runs on machines without an EGL library.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import yaml

from vp_envs.experts import expert_versions, scripted_expert
from vp_envs.splits import episode_seed, list_splits, load_splits

NAMESPACE = "vp"
SUITES = ("metaworld", "robosuite")

# What an observation's pixels show, versioned: bumped whenever a change to the envs or the renderer makes
# the same (task, split, episode) render differently. Evaluation rows and dataset manifests carry it, so
# results made before a change are told apart from results after it (the leaderboard never ranks them
# together).
#   1: until 2026-12: for 33 Meta-World tasks the frames drew the objects and goal markers a task places at
#      reset by editing the model (doors, drawers, buttons, faucets, goal sites...) at the model file's
#      default place, not where the episode put them. robosuite frames were right (Door, the only task that
#      edits its model, was synced).
#   2: the render copy takes every model array from the simulation at each reset
#      (vp_envs.rendering.SceneRenderer.reset_visuals).
RENDER_VERSION = 2
DEFAULT_MAX_EPISODE_STEPS = 500  # gym.make's TimeLimit, and vp_envs.make's own limit, unless told otherwise
NO_LIMIT = 2**31 - 1  # the simulator's own step limit when an env has max_episode_steps=None
# Rows and datasets of these suites made before RENDER_VERSION 2 carry the defect described above.
RENDER_V1_DEFECT_SUITES = ("metaworld",)

__all__ = ["make", "list_envs", "list_tasks", "list_splits", "scripted_expert", "expert_versions", "episode_seed", "load_splits",
           "parse_env_id", "suite_spec", "SuiteSpec", "RenderOptions", "NAMESPACE", "RENDER_VERSION"]


def __getattr__(name: str):
    # Rendering, and with it MuJoCo's GL backend, loads on first use rather than on import.
    if name == "RenderOptions":
        from vp_envs.rendering import RenderOptions

        return RenderOptions
    raise AttributeError(f"module 'vp_envs' has no attribute {name!r}")


@functools.cache
def _suite_tasks(suite: str) -> list[str]:
    """Task names of ``suite``, read from ``vp_envs/tasks/<suite>.yaml`` without importing the simulator."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    return list(yaml.safe_load((resources.files("vp_envs.tasks") / f"{suite}.yaml").read_text())["tasks"])


def list_tasks(suite: str) -> list[str]:
    """Task names of ``suite`` (``metaworld``: ``reach-v3``, ...; ``robosuite``: ``Lift``, ...)."""
    return list(_suite_tasks(suite))


@dataclass(frozen=True)
class SuiteSpec:
    """Sizes every task of a suite shares, read from its env class (the one source).

    Attributes:
        action_dim: action size.
        state_dims: state mode -> observation ``state`` size, for the modes whose size is the same for every
            task (robosuite's ``full`` state differs between tasks and is absent).
        privileged_dim: one size for ``info["privileged_state"]`` over the suite's tasks (robosuite's differ;
            the evaluation runner zero-pads them to this).
    """

    action_dim: int
    state_dims: dict
    privileged_dim: int

    def pad_privileged(self, state) -> np.ndarray:
        """``state`` (``(..., S)``, ``S <= privileged_dim``) zero-padded on its last axis to ``privileged_dim``
        as float64: the one rule behind the evaluation runner's ``info["privileged_state"]`` and the
        ``*_state`` policies' training data, so both read the same layout."""
        state = np.asarray(state, np.float64)
        if state.shape[-1] > self.privileged_dim:
            raise ValueError(f"privileged state of size {state.shape[-1]} exceeds the suite's {self.privileged_dim}")
        return np.pad(state, [(0, 0)] * (state.ndim - 1) + [(0, self.privileged_dim - state.shape[-1])])


@functools.cache
def suite_spec(suite: str) -> SuiteSpec:
    """The :class:`SuiteSpec` of ``suite`` (imports the suite's env module, hence MuJoCo)."""
    cls = _env_class(suite)
    return SuiteSpec(cls.action_dim, {"proprio": cls.proprio_dim, **cls.shared_state_dims},
                     cls.privileged_dim())


def _env_class(suite: str):
    if suite == "metaworld":
        from vp_envs.metaworld_env import MetaWorldEnv

        return MetaWorldEnv
    if suite == "robosuite":
        from vp_envs.robosuite_env import RobosuiteEnv

        return RobosuiteEnv
    raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")


def list_envs(suite: str | None = None) -> list[str]:
    """Every registered id (``vp/metaworld-reach-v3``, ...), optionally of one suite."""
    suites = SUITES if suite is None else (suite,)
    return [f"{NAMESPACE}/{s}-{t}" for s in suites for t in _suite_tasks(s)]


def parse_env_id(env_id: str) -> tuple[str, str]:
    """``"vp/metaworld-reach-v3"`` (or ``"metaworld-reach-v3"``) -> ``("metaworld", "reach-v3")``."""
    name = env_id.split("/", 1)[1] if env_id.startswith(f"{NAMESPACE}/") else env_id
    suite, _, task = name.partition("-")
    if suite not in SUITES or task not in _suite_tasks(suite):
        known = list_envs()
        close = [k for k in known if task and task in k][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown env id {env_id!r}{hint}; known ids: {', '.join(known)}")
    return suite, task


def _entry_point(suite: str, task: str, **kwargs):
    return _env_class(suite)(task, **kwargs)


def make(env_id: str, split: str = "train", **kwargs):
    """Make an env without Gymnasium's registry wrappers. Arguments as ``gymnasium.make``."""
    suite, task = parse_env_id(env_id)
    return _entry_point(suite, task, split=split, **kwargs)


def register_all() -> None:
    """Register every id with Gymnasium (done on import)."""
    for env_id in list_envs():
        if env_id in gym.registry:
            continue
        suite, task = parse_env_id(env_id)
        # The step limit belongs to Gymnasium's TimeLimit wrapper (as for every MuJoCo env), so that
        # gym.make(id, max_episode_steps=N) is honoured; the env itself then has no limit of its own.
        gym.register(id=env_id, entry_point=_entry_point,
                     kwargs={"suite": suite, "task": task, "max_episode_steps": None},
                     max_episode_steps=DEFAULT_MAX_EPISODE_STEPS, disable_env_checker=False)


register_all()
