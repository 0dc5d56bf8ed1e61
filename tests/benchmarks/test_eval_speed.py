"""Episodes per second: the evaluation runner (vectorised, as configured in eval/conf/eval.yaml) against a
plain one-env loop over the same episodes with the same policy, both measured in this run.

The ratios land in the benchmark JSON (``--benchmark-json``) under ``extra_info``:
``ratio_configured`` (the runner as ``vp-eval`` runs it), ``ratio_sync`` and ``ratio_async`` (two slots
in this process / in two worker processes; the async time includes spawning the workers, as a real run
pays it once).

    pytest tests/benchmarks/test_eval_speed.py -s
"""

from __future__ import annotations

import time

import numpy as np
import yaml
from omegaconf import OmegaConf

import vp_envs
from eval.policies import RandomPolicy
from eval.protocol import load_protocol, protocol_dir
from eval.runner import run

# Sized so each path runs ~10 s here: long enough that per-run overheads are amortised as in a real run.
BENCH = dict(name="bench", version=1, description="Speed benchmark: random policy, full-length episodes.",
             suite="metaworld", tasks=["reach-v3"], splits=["test"], episodes=6, max_steps=60,
             cameras=["corner2"], image_size=64)


def plain_loop(protocol) -> int:
    """The baseline: one env, one episode after another, one policy call per step."""
    env = vp_envs.make("vp/metaworld-reach-v3", split="test", **protocol.env_kwargs())
    policy = RandomPolicy()
    for ep in protocol.episodes():
        obs, info = env.reset(options={"episode": ep.index})
        policy.reset()
        done = False
        while not done:
            batch = {"state": obs["state"][None], "pixels": {c: v[None] for c, v in obs["pixels"].items()}}
            action = policy.act(batch, [{**info, "slot": 0}])[0]
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    env.close()
    return len(protocol.episodes())


def test_runner_vs_plain_loop(benchmark, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(BENCH))
    protocol = load_protocol(path)
    conf = OmegaConf.load(protocol_dir().parent / "conf" / "eval.yaml")
    n = len(protocol.episodes())

    t0 = time.perf_counter()
    plain_loop(protocol)
    plain_eps = n / (time.perf_counter() - t0)

    rates = {}
    for vector in ("sync", "async"):
        t0 = time.perf_counter()
        rows = run(protocol, "random", run_dir=tmp_path / vector, num_envs=2, vector=vector, progress=False,
                   videos_per_cell=0)
        rates[vector] = n / (time.perf_counter() - t0)
        assert len(rows) == n and (rows["error"] == "").all()

    configured = str(conf.vector)
    counter = iter(range(10))

    def configured_run():  # the timed call pytest-benchmark reports: the runner as vp-eval configures it
        return run(protocol, "random", run_dir=tmp_path / f"conf{next(counter)}", num_envs=int(conf.num_envs),
                   vector=configured, progress=False, videos_per_cell=0)

    benchmark.pedantic(configured_run, rounds=1, iterations=1)
    rates["configured"] = n / benchmark.stats.stats.mean
    benchmark.extra_info.update({
        "episodes": n, "steps_per_episode": BENCH["max_steps"], "num_envs": int(conf.num_envs),
        "configured_vector": configured, "plain_loop_episodes_per_s": round(plain_eps, 4),
        **{f"{k}_episodes_per_s": round(v, 4) for k, v in rates.items()},
        **{f"ratio_{k}": round(v / plain_eps, 3) for k, v in rates.items()},
    })
    print("\n" + "  ".join(f"{k}={v}" for k, v in benchmark.extra_info.items()))
    assert np.isfinite(rates["configured"]) and rates["configured"] > 0
