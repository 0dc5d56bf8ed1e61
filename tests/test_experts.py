"""Scripted experts through our wrapper: at least 90% success on train episodes (a sample of tasks)."""

import numpy as np
import pytest

import vp_envs
from vp_envs.expert_report import expert_success

# A spread of skills: reach, push, pick-and-place, articulated objects, a held-out task.
SAMPLE = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "button-press-topdown-v3"]


@pytest.mark.parametrize("task", SAMPLE)
def test_expert_succeeds_on_train_episodes(task):
    row = expert_success("metaworld", task, "train", episodes=20, max_steps=300)
    assert row["success_rate"] >= 0.9, row


def test_expert_reads_only_info(make_env):
    env = make_env("vp/metaworld-reach-v3", cameras=())
    expert = vp_envs.scripted_expert(env)
    obs, info = env.reset(seed=3)
    action = expert(None, info)  # no observation needed: the expert reads privileged state
    assert action.shape == (4,) and action.dtype == np.float32 and np.abs(action).max() <= 1
    with pytest.raises(KeyError, match="privileged_state"):
        expert(obs, {})


def test_no_expert_for_foreign_env():
    import gymnasium as gym

    with pytest.raises(ValueError, match="no scripted experts"):
        vp_envs.scripted_expert(gym.make("CartPole-v1"))
