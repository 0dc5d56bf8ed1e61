"""Every id runs inside gymnasium.vector.AsyncVectorEnv (one worker process per env)."""

import gymnasium as gym
import numpy as np
import pytest

import vp_envs

ALL_IDS = vp_envs.list_envs("metaworld")  # robosuite ids: tests/test_robosuite.py
# Every id passes gymnasium's check_env in process (tests/test_registry.py); what workers add is the import of
# vp_envs in a spawned process, the same for every id: a spread of 5 ids in one vector env checks it (all 50 in
# 5 vector envs of 10 workers took 90 s of the suite's time).
SPREAD = ALL_IDS[::12]
# This test process renders in other tests, and Mesa's EGL cannot continue in a forked child: spawn.
CONTEXT = "spawn"


def _factory(env_id):
    # "module:id" makes Gymnasium import vp_envs (which registers the ids) in spawned workers too.
    return lambda: gym.make(f"vp_envs:{env_id}", width=24, height=24, max_episode_steps=3)


def test_async_vector_env_runs_ids_from_across_the_suite():
    ids = SPREAD
    assert len(ids) == 5 and ids[0] == ALL_IDS[0] and ids[-1] == ALL_IDS[48]
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
