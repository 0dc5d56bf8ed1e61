"""Episodes per second of the evaluation runner rendering only the frames someone reads (its default) against
the same runner rendering every step, both measured in this run, on metaworld-lite-v2's camera and size
(corner4, 96 px): a policy that replans from the current frame every 8 steps (Video Policy's and Diffusion
Policy's chunking) and the scripted expert (reads no frame). The rows must be identical.

The ratios land in the benchmark JSON under ``extra_info`` (``ratio_replan8``, ``ratio_expert``).

    pytest tests/benchmarks/test_render_on_demand.py -s
"""

from __future__ import annotations

import time

import yaml

from eval.policies import load_policy_spec
from eval.protocol import load_protocol
from eval.runner import TIMING_COLUMNS, Runner
from eval_helpers import ReplanEvery

BENCH = dict(name="bench-render", version=1, description="Speed benchmark: rendering on demand.",
             suite="metaworld", tasks=["button-press-v3"], splits=["test"], episodes=4, max_steps=48,
             cameras=["corner4"], image_size=96)


def test_render_on_demand_vs_every_step(benchmark, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(BENCH))
    protocol = load_protocol(path)
    n = len(protocol.episodes())
    rates, rows = {}, {}
    counter = iter(range(100))

    def once(make_policy, on_demand):
        t0 = time.perf_counter()
        frame = Runner(protocol, make_policy(), tmp_path / f"run{next(counter)}", num_envs=2, vector="sync",
                       videos_per_cell=0, progress=False, render_on_demand=on_demand).run()
        return frame.drop(columns=TIMING_COLUMNS), n / (time.perf_counter() - t0)

    for name, make in (("replan8", lambda: ReplanEvery(8, "corner4")), ("expert", lambda: load_policy_spec("expert"))):
        rows[name, False], rates[name, False] = once(make, False)
        rows[name, True], rates[name, True] = once(make, True)
        assert rows[name, False].equals(rows[name, True])  # same episodes, step for step
    benchmark.pedantic(lambda: once(lambda: ReplanEvery(8, "corner4"), True), rounds=1, iterations=1)
    benchmark.extra_info.update({
        "episodes": n, "steps_per_episode": BENCH["max_steps"], "image_size": BENCH["image_size"],
        **{f"{name}_{'on_demand' if d else 'every_step'}_episodes_per_s": round(r, 3) for (name, d), r in rates.items()},
        **{f"ratio_{name}": round(rates[name, True] / rates[name, False], 3) for name in ("replan8", "expert")},
    })
    print("\n" + "  ".join(f"{k}={v}" for k, v in benchmark.extra_info.items()))
    # 1 frame in 8 (replan8) or none (expert) rendered: even on a loaded machine well above 1.5x
    assert benchmark.extra_info["ratio_replan8"] > 1.5 and benchmark.extra_info["ratio_expert"] > 1.5
