"""Ids, registration with Gymnasium, the env contract and clear errors for bad input."""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vp_envs

ALL_IDS = vp_envs.list_envs("metaworld")  # robosuite ids: tests/test_robosuite.py


def test_suites_listed():
    assert vp_envs.list_envs("robosuite") == [f"vp/robosuite-{t}" for t in ("Lift", "Stack", "PickPlaceCan", "Door")]
    assert len(vp_envs.list_envs()) == 54


def test_all_fifty_metaworld_tasks_are_listed():
    ids = vp_envs.list_envs("metaworld")
    assert len(ids) == 50 and len(set(ids)) == 50
    assert "vp/metaworld-pick-place-v3" in ids
    assert all(i in gym.registry for i in ids)


def test_splits_listed():
    assert vp_envs.list_splits("metaworld") == [
        "train", "test", "camera", "lighting", "texture", "distractor", "position", "new_task"]


# gymnasium's render-mode and close checks make two more envs of the task (one of them rendering), the
# same wrapper code for every task: run in full on these, the rest skip those two.
FULL_CHECK = {"vp/metaworld-reach-v3", "vp/metaworld-pick-place-v3", "vp/metaworld-door-open-v3"}


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, width=24, height=24, render_mode="rgb_array")
    full = env_id in FULL_CHECK
    try:
        check_env(env.unwrapped, skip_render_check=not full, skip_close_check=not full)
    finally:
        env.close()


def test_contract_obs_action_info(make_env):
    env = make_env("vp/metaworld-pick-place-v3", split="camera", cameras=("corner2", "corner3"),
                   width=40, height=30)
    obs, info = env.reset(options={"episode": 3})
    assert set(obs) == {"pixels", "state"}
    assert obs["pixels"]["corner2"].shape == (30, 40, 3) and obs["pixels"]["corner2"].dtype == np.uint8
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (4,)
    assert env.action_space.shape == (4,) and env.action_space.low.min() == -1
    for key in ("success", "instruction", "task", "split", "privileged_state", "seed"):
        assert key in info
    assert info["task"] == "pick-place-v3" and info["split"] == "camera"
    assert info["instruction"].endswith(".") and len(info["instruction"].split()) >= 4
    assert info["seed"] == vp_envs.episode_seed("metaworld", "pick-place-v3", "camera", 3)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and info["success"] in (True, False)


def test_state_only_and_full_state(make_env):
    env = make_env("vp/metaworld-reach-v3", cameras=(), state="full")
    obs, info = env.reset(seed=1)
    assert set(obs) == {"state"} and obs["state"].shape == (39,)
    np.testing.assert_allclose(obs["state"], info["privileged_state"], atol=1e-5)




@pytest.mark.parametrize("env_id, kwargs, message", [
    ("vp/metaworld-pick-plce-v3", {}, "unknown env id 'vp/metaworld-pick-plce-v3'"),
    ("vp/metaworld-reach-v3", {"split": "camra"}, "unknown split 'camra' for suite 'metaworld'; known: train, test, camera"),
    ("vp/metaworld-reach-v3", {"split": "camera", "level": 9}, "has levels 1..4"),
    ("vp/metaworld-reach-v3", {"cameras": ("nope",)}, "unknown camera 'nope'; this model has: topview, corner"),
    ("vp/metaworld-reach-v3", {"state": "pixels"}, "unknown state mode 'pixels'; known: proprio, full"),
    ("vp/metaworld-reach-v3", {"width": 0}, "width and height must be positive"),
    ("vp/metaworld-reach-v3", {"render_mode": "human"}, "unknown render_mode 'human'"),
    ("vp/robosuite-Lfit", {}, "known ids: vp/metaworld-assembly-v3"),
])
def test_clear_errors(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        vp_envs.make(env_id, **kwargs)


def test_gymnasium_make_takes_split():
    env = gym.make("vp/metaworld-drawer-open-v3", split="new_task", width=24, height=24)
    obs, info = env.reset(options={"episode": 0})
    assert info["split"] == "new_task"
    env.close()




def _fresh_python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_training_imports_no_simulator_or_gl():
    # vp-train must run on a GPU node without an EGL library: nothing it imports may load MuJoCo, whose
    # import loads the GL backend named by MUJOCO_GL (an AttributeError deep in PyOpenGL when EGL is absent).
    loaded = _fresh_python("import sys, vp_agent.train, vp_envs; vp_envs.list_envs(); "
                           "print(sorted(m for m in ('mujoco', 'metaworld', 'robosuite', 'OpenGL') "
                           "if m in sys.modules))")
    assert loaded == "[]"


def test_simulator_envs_still_default_to_egl():
    # robosuite_env imports mujoco before the renderer: the EGL default must already be set by then.
    backend = _fresh_python("from vp_envs.robosuite_env import list_tasks; import mujoco.gl_context as g; "
                            "print(g.GLContext.__module__)")
    assert backend == "mujoco.egl"


@pytest.mark.parametrize("env_id", ["vp/metaworld-reach-v3", "vp/robosuite-Lift"])
def test_gym_make_honours_max_episode_steps(env_id):
    """gym.make takes max_episode_steps for its TimeLimit wrapper; the env must not cut the episode earlier."""
    import gymnasium as gym

    env = gym.make(env_id, cameras=(), max_episode_steps=7)
    try:
        env.reset(seed=0)
        flags = [env.step(env.action_space.sample() * 0)[3] for _ in range(7)]
        assert flags == [False] * 6 + [True]
        assert gym.spec(env_id).max_episode_steps == 500  # the registered default
        assert env.unwrapped.max_episode_steps is None  # no limit of its own under gym.make
    finally:
        env.close()
    long = gym.make("vp/metaworld-reach-v3", cameras=(), max_episode_steps=501)
    try:
        long.reset(seed=0)
        assert not any(long.step(np.zeros(4))[3] for _ in range(500))  # the env's old 500-step cut is gone
        assert long.step(np.zeros(4))[3]
    finally:
        long.close()
