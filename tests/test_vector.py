"""Every id runs inside gymnasium.vector.AsyncVectorEnv (one worker process per env)."""

import gymnasium as gym
import numpy as np
import pytest

import vp_envs

ALL_IDS = vp_envs.list_envs("metaworld")  # robosuite ids: tests/test_robosuite.py
CHUNK = 10  # workers per vector env: all 50 ids in 5 vector envs keeps process start-up bounded
# This test process renders in other tests, and Mesa's EGL cannot continue in a forked child: spawn.
CONTEXT = "spawn"


def _factory(env_id):
    # "module:id" makes Gymnasium import vp_envs (which registers the ids) in spawned workers too.
    return lambda: gym.make(f"vp_envs:{env_id}", width=24, height=24, max_episode_steps=3)


@pytest.mark.parametrize("start", range(0, len(ALL_IDS), CHUNK))
def test_async_vector_env_runs_every_id(start):
    ids = ALL_IDS[start:start + CHUNK]
    venv = gym.vector.AsyncVectorEnv([_factory(i) for i in ids], context=CONTEXT)
    try:
        obs, info = venv.reset(seed=list(range(len(ids))))
        assert obs["pixels"]["corner2"].shape == (len(ids), 24, 24, 3)
        assert list(info["task"]) == [i.split("-", 1)[1] for i in ids]
        for _ in range(4):  # crosses the 3-step limit: autoreset must work
            obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
        assert reward.shape == (len(ids),) and np.isfinite(reward).all()
    finally:
        venv.close()


def test_vector_worker_matches_in_process_env():
    """The same (task, split, episode) renders the same first frame in another process."""
    venv = gym.vector.AsyncVectorEnv([_factory("vp/metaworld-push-v3")] * 2, context=CONTEXT)
    try:
        obs, _ = venv.reset(options={"episode": 5})
    finally:
        venv.close()
    env = vp_envs.make("vp/metaworld-push-v3", width=24, height=24)
    local, _ = env.reset(options={"episode": 5})
    env.close()
    np.testing.assert_array_equal(obs["pixels"]["corner2"][0], local["pixels"]["corner2"])
    np.testing.assert_array_equal(obs["pixels"]["corner2"][1], local["pixels"]["corner2"])


def test_fork_after_render_fails_clearly_instead_of_hanging():
    env = vp_envs.make("vp/metaworld-reach-v3", width=24, height=24)
    env.reset(seed=0)  # this process now holds an EGL context
    venv = gym.vector.AsyncVectorEnv([_factory("vp/metaworld-reach-v3")], context="fork")
    try:
        with pytest.raises(RuntimeError, match="context='spawn'"):
            venv.reset(seed=0)
    finally:
        venv.close(terminate=True)
        env.close()
