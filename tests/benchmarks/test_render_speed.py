"""A 64x64 pixel step through vp_envs against Meta-World's stock ``render_mode="rgb_array"`` path.

Each has a benchmark for the report; the ratio test times both again, interleaved step by step (robust to other
load on the machine: see benchmarks/stepping.py), compares their fastest steps and records the ratio in the
benchmark JSON (``--benchmark-json``). Target: at least 5x.

    pytest tests/benchmarks/test_render_speed.py --benchmark-columns=mean,rounds
"""

import numpy as np

import vp_envs

from benchmarks.stepping import check_speedup, time_steps

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
    env.render()  # makes the viewer (and its GL context) now, not inside a timed step
    return env


ROUNDS = 30


def _stock_step(env):
    env.step(ACTION)
    return env.render()


def _vp_env():
    env = vp_envs.make(f"vp/metaworld-{TASK}", width=64, height=64, cameras=("corner2",))
    env.reset(seed=0)
    return env


def test_stock_metaworld_pixel_step(benchmark):
    env = _stock_env()
    img = time_steps(benchmark, lambda: _stock_step(env), env.reset, ROUNDS)
    assert img.shape == (64, 64, 3)
    env.close()


def test_vp_envs_pixel_step(benchmark):
    env = _vp_env()
    obs = time_steps(benchmark, lambda: env.step(ACTION)[0], lambda: env.reset(seed=0), ROUNDS)
    assert obs["pixels"]["corner2"].shape == (64, 64, 3)
    env.close()


def test_speedup_over_stock(benchmark):
    stock, ours = _stock_env(), _vp_env()
    # gymnasium makes its context current only when one renderer holds several viewers; vp_envs' renderer makes
    # its own current, so the stock one is made current again (untimed) before each of its steps
    paths = {"stock": (lambda: _stock_step(stock), stock.reset, stock.mujoco_renderer.viewer.make_context_current),
             "vp_envs": (lambda: ours.step(ACTION), lambda: ours.reset(seed=0), None)}
    try:
        check_speedup(benchmark, paths, ROUNDS, TARGET_RATIO, "64x64 pixel step")
    finally:
        stock.close()
        ours.close()


def test_remaking_an_env_reuses_its_gl_context(benchmark, monkeypatch):
    """Make an env of a task, reset it (its first frame) and close it, as an evaluation runner does going from
    split to split: with the process's pool of idle render contexts (the default) against a context built for
    every env (``VP_GL_POOL_SIZE=0``), timed interleaved. Target: at least 2x."""
    from vp_envs import rendering

    from benchmarks.stepping import interleaved_fastest

    def remake():
        env = vp_envs.make(f"vp/metaworld-{TASK}", width=64, height=64, cameras=("corner2",))
        env.reset(seed=0)
        env.close()

    paths = {"built": (remake, lambda: None, lambda: monkeypatch.setattr(rendering, "GL_POOL_SIZE", 0)),
             "reused": (remake, lambda: None, lambda: monkeypatch.setattr(rendering, "GL_POOL_SIZE", 8))}
    times = interleaved_fastest(paths, rounds=5, warmup=1)
    ratio = times["built"] / times["reused"]
    benchmark.extra_info.update(built_ms=times["built"] * 1e3, reused_ms=times["reused"] * 1e3, speedup=ratio)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nmake+reset+close: context built {times['built'] * 1e3:.0f} ms, reused {times['reused'] * 1e3:.0f} ms, "
          f"speed-up {ratio:.1f}x")
    assert ratio >= 2.0, \
        f"{ratio:.2f}x < 2x (built {times['built'] * 1e3:.0f} ms, reused {times['reused'] * 1e3:.0f} ms)"
