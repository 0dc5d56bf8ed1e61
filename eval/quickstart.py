"""``vp-quickstart``: the README's main job, small enough for a laptop CPU (about 5 minutes).

1. records expert demonstrations of two Meta-World tasks and draws every split (``vp-preview``),
2. trains a small BC policy on them (``vp-train``),
3. evaluates it on a slice of the ``metaworld-lite`` protocol (its two tasks, ``test`` and ``camera``,
   5 episodes each) with the same runner as ``vp-eval``, and prints success per split.

    vp-quickstart --out runs/quickstart
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from eval.protocol import load_protocol, parse_protocol
from eval.runner import run
from vp_agent.train import train
from vp_envs.preview import build_parser, preview


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("vp-quickstart")
    parser.set_defaults(episodes=5)
    parser.add_argument("--train-steps", type=int, default=400, help="BC optimiser steps (default: 400)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per (task, split)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    t0 = time.time()
    try:
        preview(out, args.suite, args.tasks, args.episodes, args.size)
        cfg = OmegaConf.create({
            "policy": {"name": "bc", "config": {}}, "data": [str(out / "data")], "tasks": None,
            "steps": args.train_steps, "batch_size": 32, "seed": 0, "device": "auto", "save_every": 200,
            "log_every": 50, "out_dir": str(out / "train_bc"), "tensorboard": False, "threads": 0})
        checkpoint = train(cfg)
        lite = load_protocol("metaworld-lite")
        tasks = [t for t in args.tasks if t in lite.tasks]
        if not tasks:
            raise ValueError(f"none of {args.tasks} is a metaworld-lite task ({', '.join(lite.tasks)})")
        protocol = parse_protocol({**lite.raw, "name": "metaworld-lite-quickstart", "tasks": tasks,
                                   "splits": ["test", "camera"], "episodes": args.eval_episodes},
                                  source="metaworld-lite (quickstart slice)")
        import torch

        torch.set_num_threads(1)  # small-batch inference beside the renderer: see eval/conf/eval.yaml
        rows = run(protocol, str(checkpoint), run_dir=out / "eval_bc", vector="sync", num_envs=2)
    except ValueError as exc:
        print(f"vp-quickstart: error: {exc}", file=sys.stderr)
        return 2
    table = rows.groupby(["task", "split"])["success"].mean().unstack()
    print(f"\nBC after {args.train_steps} steps on {args.episodes} demos per task, success rate:\n{table}\n"
          f"\ncontact sheet:  {out / 'splits_contact_sheet.png'}\nshift levels:   {out / 'split_levels.png'}\n"
          f"robosuite:      {out / 'robosuite_splits_contact_sheet.png'}\n"
          f"expert videos:  {out / 'videos'}\nBC checkpoint:  {checkpoint}\n"
          f"BC rollouts:    {out / 'eval_bc'} (episodes.parquet, videos/)\ndone in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
