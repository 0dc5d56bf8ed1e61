"""The vp_envs contract, once, over both suites: what every env of every suite promises, with the sizes read
from ``vp_envs.suite_spec`` (the one place a suite's sizes live). Suite-specific behaviour (robosuite's
privileged layout, Meta-World's 50 ids) stays in ``test_registry.py`` and ``test_robosuite.py``."""

import numpy as np
import pytest

import vp_envs

TASKS = {"metaworld": ["reach-v3", "drawer-open-v3", "pick-place-v3"], "robosuite": ["Lift", "Stack", "PickPlaceCan", "Door"]}
CASES = [(suite, task) for suite, tasks in TASKS.items() for task in tasks]


@pytest.mark.parametrize("suite, task", CASES)
def test_spaces_and_info_follow_the_suite_spec(make_env, suite, task):
    spec = vp_envs.suite_spec(suite)
    env = make_env(f"vp/{suite}-{task}", split="test")
    cam = env.unwrapped.cameras[0]
    assert env.action_space.shape == (spec.action_dim,) and env.action_space.low.min() == -1
    assert env.observation_space["state"].shape == (spec.state_dims["proprio"],)
    obs, info = env.reset(options={"episode": 2})
    assert env.observation_space.contains(obs)
    assert obs["pixels"][cam].shape == (32, 32, 3) and obs["pixels"][cam].dtype == np.uint8
    assert set(info) >= {"success", "instruction", "task", "split", "level", "seed", "privileged_state"}
    assert info["seed"] == vp_envs.episode_seed(suite, task, "test", 2) and info["task"] == task
    assert info["privileged_state"].dtype == np.float64 and info["privileged_state"].size <= spec.privileged_dim
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and isinstance(info["success"], bool)
    assert not terminated and not truncated


@pytest.mark.parametrize("suite", TASKS)
def test_full_state_where_every_task_shares_its_size(make_env, suite):
    spec = vp_envs.suite_spec(suite)
    for task in TASKS[suite]:
        env = make_env(f"vp/{suite}-{task}", cameras=(), state="full")
        obs, _ = env.reset(seed=1)
        assert set(obs) == {"state"}
        if "full" in spec.state_dims:
            assert obs["state"].shape == (spec.state_dims["full"],)
        assert obs["state"].size > spec.state_dims["proprio"]


@pytest.mark.parametrize("suite", TASKS)
def test_truncation_at_max_steps_and_termination_on_success(make_env, suite):
    spec = vp_envs.suite_spec(suite)
    env = make_env(f"vp/{suite}-{TASKS[suite][0]}", cameras=(), max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(spec.action_dim))[3] for _ in range(3)]
    assert flags == [False, False, True]


@pytest.mark.parametrize("suite", TASKS)
def test_a_wrong_action_shape_says_what_an_action_is(make_env, suite):
    spec = vp_envs.suite_spec(suite)
    env = make_env(f"vp/{suite}-{TASKS[suite][0]}", cameras=())
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(spec.action_dim))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"actions are {spec.action_dim}-D \(dx, dy, dz, .*gripper\); got shape \(3,\)"):
        env.step(np.zeros(3))


@pytest.mark.parametrize("suite", TASKS)
def test_bad_arguments_are_refused_in_the_same_words(suite):
    task = TASKS[suite][0]
    for kwargs, message in [({"state": "pixels"}, "unknown state mode 'pixels'; known: proprio, full"),
                            ({"width": 0}, "width and height must be positive"),
                            ({"max_episode_steps": 0}, "max_episode_steps must be positive"),
                            ({"render_mode": "human"}, "unknown render_mode 'human'; known: rgb_array")]:
        with pytest.raises(ValueError, match=message):
            vp_envs.make(f"vp/{suite}-{task}", **kwargs)


@pytest.mark.parametrize("suite", TASKS)
def test_render_returns_the_first_cameras_frame(make_env, suite):
    env = make_env(f"vp/{suite}-{TASKS[suite][0]}", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs["pixels"][env.unwrapped.cameras[0]])
