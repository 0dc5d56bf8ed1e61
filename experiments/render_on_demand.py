"""Rendering on demand with a real policy: the same protocol episodes run by the evaluation runner rendering
every step and rendering only the frames someone reads (vp-eval's default), one after the other in this
process; prints episodes per second of each, their ratio, and checks that the rows are identical.

    python experiments/render_on_demand.py runs/train/se-metaworld-lite-v2/video_policy-1demos-seed0/checkpoints/last \\
        --protocol metaworld-lite-v2 --per-task 1 --num-envs 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main(argv: list[str] | None = None) -> int:
    import torch

    from eval.policies import load_policy_spec
    from eval.protocol import load_protocol
    from eval.runner import TIMING_COLUMNS, Runner

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="a vp-eval policy spec (checkpoint folder, expert, random, ...)")
    ap.add_argument("--protocol", default="metaworld-lite-v2")
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-task", type=int, default=1, help="episodes of each task (the first ones)")
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (vp-eval's default: 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    protocol = load_protocol(args.protocol)
    episodes = [ep for ep in protocol.episodes() if ep.split == args.split and ep.index < args.per_task]
    if not episodes:
        print(f"no {args.split} episodes in {protocol.name}", file=sys.stderr)
        return 2
    rows, rate = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for on_demand in (False, True):
            t0 = time.perf_counter()
            frame = Runner(protocol, load_policy_spec(args.policy), Path(tmp) / str(on_demand),
                           num_envs=args.num_envs, vector="sync", videos_per_cell=0, progress=False,
                           episodes=episodes, render_on_demand=on_demand).run()
            seconds = time.perf_counter() - t0
            rows[on_demand], rate[on_demand] = frame.drop(columns=TIMING_COLUMNS), len(episodes) / seconds
            print(f"render {'on demand' if on_demand else 'every step'}: {len(episodes)} episodes, "
                  f"{int(frame['steps'].sum())} steps, {seconds:.1f} s ({seconds / len(episodes):.2f} s an episode)")
    same = rows[False].equals(rows[True])
    print(f"ratio (episodes/s, on demand / every step): {rate[True] / rate[False]:.2f}x; rows identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
