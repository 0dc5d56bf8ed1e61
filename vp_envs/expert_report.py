"""Measure the scripted experts' success per task through the vp_envs wrapper.

    python -m vp_envs.expert_report --suite metaworld --split train --episodes 20 \
        --out results/metaworld/expert_success_train.csv

Runs state-only (no cameras: the expert reads privileged state, pixels do not change its actions), and
writes one row per task: episodes, successes, success rate with a 95% Wilson interval, mean steps to
success.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import vp_envs
from vp_envs.datagen import resolve_tasks
from vp_envs.stats import wilson_interval


def expert_success(suite: str, task: str, split: str, episodes: int, max_steps: int = 500) -> dict:
    env = vp_envs.make(f"vp/{suite}-{task}", split=split, cameras=(), max_episode_steps=max_steps,
                       terminate_on_success=True)
    expert = vp_envs.scripted_expert(env)
    wins, steps = 0, []
    for i in range(episodes):
        obs, info = env.reset(options={"episode": i})
        for t in range(max_steps):
            obs, _, terminated, truncated, info = env.step(expert(obs, info))
            if terminated or truncated:
                break
        if info["success"]:
            wins += 1
            steps.append(t + 1)
    env.close()
    lo, hi = wilson_interval(wins, episodes)
    return dict(task=task, split=split, episodes=episodes, successes=wins, success_rate=wins / episodes,
                ci95_low=round(lo, 4), ci95_high=round(hi, 4),
                mean_steps_to_success=round(float(np.mean(steps)), 1) if steps else None)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="metaworld")
    p.add_argument("--split", default="train")
    p.add_argument("--tasks", nargs="+", default=["all"])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    rows = []
    t0 = time.time()
    for task in tqdm(resolve_tasks(args.suite, args.tasks), desc="expert success", unit="task"):
        rows.append(expert_success(args.suite, task, args.split, args.episodes, args.max_steps))
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)
    print(df.to_string(index=False))
    print(f"mean success {df.success_rate.mean():.3f}; tasks below 0.9: "
          f"{', '.join(df[df.success_rate < 0.9].task) or 'none'}; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
