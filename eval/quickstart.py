"""``vp-quickstart``: the README's main job, small enough for a laptop CPU (about 5 minutes).

1. records expert demonstrations of two Meta-World tasks of ``metaworld-lite-v2`` through its camera and
   image size, and draws every split (``vp-preview``),
2. trains a small BC policy on them (``vp-train``, the v2 recipe's observation settings: no crop),
3. evaluates it on a slice of the ``metaworld-lite-v2`` protocol (its two tasks, ``test`` and ``camera``,
   5 episodes each) with the same runner as ``vp-eval``, and prints success per split,
4. trains a tiny Video Policy (autoencoder, video model, action head: a few hundred steps in all) on the
   same demonstrations and rolls it out once per task, writing the generated video beside the executed
   one (``eval_video_policy/videos/*_vs_generated.mp4``). At this size the generated frames are blurry
   guesses; ``results/`` holds the full run's.

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


PROTOCOL = "metaworld-lite-v2"
QUICKSTART_TASKS = ("button-press-topdown-v3", "drawer-open-v3")  # two v2 tasks whose objects the image shows


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("vp-quickstart")
    parser.set_defaults(episodes=5, tasks=list(QUICKSTART_TASKS))
    parser.add_argument("--train-steps", type=int, default=400, help="BC optimiser steps (default: 400)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per (task, split)")
    parser.add_argument("--video-policy-steps", type=int, default=150,
                        help="optimiser steps per Video Policy stage (default: 150; 0 skips Video Policy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    t0 = time.time()
    try:
        lite = load_protocol(PROTOCOL)
        camera = lite.cameras[0]
        preview(out, args.suite, args.tasks, args.episodes, args.size, data_cameras=lite.cameras,
                data_size=lite.image_size[0])
        cfg = OmegaConf.create({
            "policy": {"name": "bc", "config": {"camera": camera, "crop": 0}}, "data": [str(out / "data")],
            "tasks": None,
            "steps": args.train_steps, "batch_size": 32, "seed": 0, "device": "auto", "save_every": 200,
            "log_every": 50, "out_dir": str(out / "train_bc"), "tensorboard": False, "threads": 0})
        checkpoint = train(cfg)
        tasks = [t for t in args.tasks if t in lite.training_tasks]
        if not tasks:
            raise ValueError(f"none of {args.tasks} is a {PROTOCOL} training task ({', '.join(lite.training_tasks)})")
        protocol = parse_protocol({**lite.raw, "name": f"{PROTOCOL}-quickstart", "tasks": tasks,
                                   "held_out_tasks": [], "splits": ["test", "camera"],
                                   "episodes": args.eval_episodes}, source=f"{PROTOCOL} (quickstart slice)")
        import torch

        torch.set_num_threads(1)  # small-batch inference beside the renderer: see eval/conf/eval.yaml
        rows = run(protocol, str(checkpoint), run_dir=out / "eval_bc", vector="sync", num_envs=2)
        vp_rows = vp_checkpoint = None
        if args.video_policy_steps > 0:
            n = args.video_policy_steps
            vp_cfg = OmegaConf.merge({k: v for k, v in cfg.items() if k != "policy"}, {
                "policy": {"name": "video_policy", "config": {
                    "camera": camera, "stage_steps": {"vae": n, "video": n, "action": n},
                    "stage_batch": {"vae": 16, "video": 8, "action": 16}}},
                "out_dir": str(out / "train_video_policy"), "save_every": n})
            vp_checkpoint = train(vp_cfg)
            one = parse_protocol({**protocol.raw, "name": f"{PROTOCOL}-quickstart-vp", "splits": ["test"],
                                  "episodes": 1}, source=f"{PROTOCOL} (quickstart slice)")
            vp_rows = run(one, str(vp_checkpoint), run_dir=out / "eval_video_policy", vector="sync", num_envs=1,
                          videos_per_cell=1)
    except ValueError as exc:
        print(f"vp-quickstart: error: {exc}", file=sys.stderr)
        return 2
    table = rows.groupby(["task", "split"])["success"].mean().unstack()
    print(f"\nBC after {args.train_steps} steps on {args.episodes} demos per task, success rate:\n{table}\n"
          f"\ncontact sheet:  {out / 'splits_contact_sheet.png'}\nshift levels:   {out / 'split_levels.png'}\n"
          f"robosuite:      {out / 'robosuite_splits_contact_sheet.png'}\n"
          f"expert videos:  {out / 'videos'}\nBC checkpoint:  {checkpoint}\n"
          f"BC rollouts:    {out / 'eval_bc'} (episodes.parquet, videos/)")
    if vp_rows is not None:
        sides = sorted((out / "eval_video_policy" / "videos").rglob("*_vs_generated.mp4"))
        print(f"Video Policy ({args.video_policy_steps} steps per stage): success {int(vp_rows['success'].sum())}"
              f"/{len(vp_rows)} episodes; checkpoint {vp_checkpoint}\n"
              "executed | generated videos:\n" + "\n".join(f"  {p}" for p in sides))
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
