"""A 64x64 pixel step through vp_envs against robosuite's stock camera observations.

The stock path is ``suite.make(..., use_camera_obs=True, has_offscreen_renderer=True)`` with one 64x64
``agentview`` camera and the same controller; ours is ``vp/robosuite-Lift`` with the same camera. Each has a
benchmark for the report; the ratio test times both again, interleaved step by step (robust to other load:
see benchmarks/stepping.py), compares their fastest steps and records the ratio in the benchmark JSON. Target: at least 3x (physics
and the OSC controller, ~11 ms a step, are shared by both and bound the ratio).

    pytest tests/benchmarks/test_robosuite_speed.py --benchmark-columns=mean,rounds
"""

import numpy as np

import vp_envs

from benchmarks.stepping import check_speedup, time_steps

TARGET_RATIO = 3.0
TASK = "Lift"
ACTION = np.array([0.1, 0.0, -0.1, 0.0, 0.0, 0.05, 0.5], np.float32)
ROUNDS = 20
RATIO_ROUNDS = 40


def _stock_env():
    from vp_envs.robosuite_env import CONSTRUCTION_SEED, CONTROL_FREQ, ROBOT, _robosuite

    suite, load_controller = _robosuite()
    env = suite.make(TASK, robots=ROBOT, controller_configs=load_controller(controller="BASIC", robot=ROBOT),
                     has_renderer=False, has_offscreen_renderer=True, use_camera_obs=True,
                     camera_names=["agentview"], camera_heights=64, camera_widths=64,
                     control_freq=CONTROL_FREQ, hard_reset=False, ignore_done=True, seed=CONSTRUCTION_SEED)
    env.reset()
    return env


def _vp_env():
    env = vp_envs.make(f"vp/robosuite-{TASK}", width=64, height=64, cameras=("agentview",))
    env.reset(seed=0)
    return env


def _make_stock_current(env):
    # robosuite 1.5.2 never makes its context current before rendering; another context (a vp_envs renderer)
    # would otherwise receive the draw calls. Done outside the timed step, which stays stock.
    env.sim._render_context_offscreen.gl_ctx.make_current()


def test_stock_robosuite_pixel_step(benchmark):
    env = _stock_env()
    _make_stock_current(env)
    obs = time_steps(benchmark, lambda: env.step(ACTION)[0], env.reset, ROUNDS)
    assert obs["agentview_image"].shape == (64, 64, 3)
    env.close()


def test_vp_envs_pixel_step(benchmark):
    env = _vp_env()
    obs = time_steps(benchmark, lambda: env.step(ACTION)[0], lambda: env.reset(seed=0), ROUNDS)
    assert obs["pixels"]["agentview"].shape == (64, 64, 3)
    env.close()


def test_speedup_over_stock(benchmark):
    stock, ours = _stock_env(), _vp_env()
    paths = {"stock": (lambda: stock.step(ACTION), stock.reset, lambda: _make_stock_current(stock)),
             "vp_envs": (lambda: ours.step(ACTION), lambda: ours.reset(seed=0), None)}
    try:
        check_speedup(benchmark, paths, RATIO_ROUNDS, TARGET_RATIO, "64x64 robosuite pixel step")
    finally:
        stock.close()
        ours.close()
