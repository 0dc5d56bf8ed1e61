"""A 64x64 pixel step through vp_envs against Meta-World's stock ``render_mode="rgb_array"`` path.

Both are measured in the same run; the ratio test compares their fastest steps (robust to other load on the
machine) and records the ratio in the
benchmark JSON (``--benchmark-json``). Target: at least 5x.

    pytest tests/benchmarks/test_render_speed.py --benchmark-columns=mean,rounds
"""

import numpy as np

import vp_envs

from benchmarks.stepping import check_speedup, time_steps

FASTEST: dict[str, float] = {}
TARGET_RATIO = 5.0
TASK = "pick-place-v3"
ACTION = np.array([0.1, 0.0, -0.1, 0.5], np.float32)


def _stock_env():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[TASK](render_mode="rgb_array", camera_name="corner2", width=64, height=64)
    env._freeze_rand_vec = False
    env._set_task_called = True
    env.seed(0)
    env.reset()
    return env


def _run(benchmark, step, reset, key):
    return time_steps(benchmark, step, reset, 30, FASTEST, key)


def test_stock_metaworld_pixel_step(benchmark):
    env = _stock_env()

    def step():
        env.step(ACTION)
        return env.render()

    img = _run(benchmark, step, env.reset, "stock")
    assert img.shape == (64, 64, 3)
    env.close()


def test_vp_envs_pixel_step(benchmark):
    env = vp_envs.make(f"vp/metaworld-{TASK}", width=64, height=64, cameras=("corner2",))
    env.reset(seed=0)
    obs = _run(benchmark, lambda: env.step(ACTION)[0], lambda: env.reset(seed=0), "vp_envs")
    assert obs["pixels"]["corner2"].shape == (64, 64, 3)
    env.close()


def test_speedup_over_stock(benchmark):
    check_speedup(benchmark, FASTEST, TARGET_RATIO, "64x64 pixel step")
