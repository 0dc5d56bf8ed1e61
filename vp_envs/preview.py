"""``vp-preview``: see the splits. The first half of the README's main job (``vp-quickstart``).

1. records a few expert demonstrations of two Meta-World tasks (``vp-data``),
2. draws the splits side by side: ``splits_contact_sheet.png`` (rows: splits; columns: tasks x episodes),
   ``split_levels.png`` (rows: shift splits; columns: levels 1..4), and the same sheet for robosuite
   (``robosuite_splits_contact_sheet.png``),
3. writes one short expert video per split under ``videos/``.

    vp-preview --out runs/preview
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import imageio
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

import vp_envs
from vp_envs.datagen import generate

DEFAULT_TASKS = ("pick-place-v3", "reach-v3")
ROBOSUITE_TASKS = ("Lift", "Door")  # the robosuite sheet: a grasp task and an articulated one
LABEL_W = 110


def first_frames(suite: str, task: str, split: str, episodes: list[int], size: int, level: int | None = None,
                 camera: str | None = None) -> list[np.ndarray]:
    """First frame of each of ``episodes`` of (task, split): one env, reset once per episode."""
    kwargs = dict(split=split, level=level, width=size, height=size)
    if camera:
        kwargs["cameras"] = (camera,)
    env = vp_envs.make(f"vp/{suite}-{task}", **kwargs)
    frames = [next(iter(env.reset(options={"episode": e})[0]["pixels"].values())) for e in episodes]
    env.close()
    return frames


def labelled_grid(rows: list[tuple[str, list[np.ndarray]]], header: list[str], size: int) -> Image.Image:
    ncol = max(len(r[1]) for r in rows)
    sheet = Image.new("RGB", (LABEL_W + ncol * size, 18 + len(rows) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for j, text in enumerate(header):
        draw.text((LABEL_W + j * size + 3, 3), text, fill="black")
    for i, (label, images) in enumerate(rows):
        draw.text((4, 18 + i * size + size // 2 - 6), label, fill="black")
        for j, img in enumerate(images):
            sheet.paste(Image.fromarray(img), (LABEL_W + j * size, 18 + i * size))
    return sheet


def contact_sheet(suite: str, tasks: tuple[str, ...], episodes: int, size: int) -> Image.Image:
    spec = vp_envs.load_splits(suite)
    held_out = spec.held_out_tasks[0]
    rows = []
    for name, split in tqdm(spec.splits.items(), desc="contact sheet", unit="split"):
        row_tasks = tasks if split.tasks is None else (held_out,) * len(tasks)
        rows.append((name, [f for t in row_tasks for f in first_frames(suite, t, name, list(range(episodes)), size)]))
    header = [f"{t[:14]} ep{e}" for t in tasks for e in range(episodes)]
    return labelled_grid(rows, header, size)


def levels_sheet(suite: str, task: str, size: int) -> Image.Image:
    spec = vp_envs.load_splits(suite)
    rows = [("test", first_frames(suite, task, "test", [0], size))]
    for name, split in spec.splits.items():
        if split.levels and split.tasks is None:
            rows.append((name, [first_frames(suite, task, name, [0], size, level=lv)[0]
                                for lv in range(1, split.num_levels + 1)]))
    return labelled_grid(rows, [f"level {i}" for i in range(1, 5)], size)


def split_video(suite: str, task: str, split: str, path: Path, size: int, max_steps: int = 150) -> bool:
    env = vp_envs.make(f"vp/{suite}-{task}", split=split, width=size, height=size,
                       max_episode_steps=max_steps, terminate_on_success=True)
    expert = vp_envs.scripted_expert(env)
    obs, info = env.reset(options={"episode": 0})
    frames = [next(iter(obs["pixels"].values()))]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert(obs, info))
        frames.append(next(iter(obs["pixels"].values())))
        done = terminated or truncated
    env.close()
    imageio.mimwrite(path, frames, fps=20, macro_block_size=1)
    return bool(info["success"])


def preview(out: Path, suite: str, tasks: list[str], episodes: int, size: int,
            data_cameras: tuple[str, ...] | None = None, data_size: int = 64) -> None:
    """Demonstrations (``data_cameras`` at ``data_size`` px), contact sheets and one expert video per split,
    written under ``out``."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    generate(suite, tasks, "train", episodes, out / "data", cameras=data_cameras, size=data_size)
    contact_sheet(suite, tuple(tasks), 2, size).save(out / "splits_contact_sheet.png")
    levels_sheet(suite, tasks[0], size).save(out / "split_levels.png")
    contact_sheet("robosuite", ROBOSUITE_TASKS, 2, size).save(out / "robosuite_splits_contact_sheet.png")
    spec = vp_envs.load_splits(suite)
    for name, split in tqdm(spec.splits.items(), desc="videos", unit="split"):
        task = tasks[0] if split.tasks is None else spec.held_out_tasks[0]
        ok = split_video(suite, task, name, out / "videos" / f"{name}_{task}.mp4", size)
        tqdm.write(f"  {name:10s} {task:18s} expert {'succeeded' if ok else 'failed'}")


def build_parser(prog: str = "vp-preview") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=f"runs/{prog.removeprefix('vp-')}", help="output directory")
    p.add_argument("--suite", default="metaworld")
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    p.add_argument("--episodes", type=int, default=3, help="demonstrations per task (default: 3)")
    p.add_argument("--size", type=int, default=128, help="preview image size (default: 128)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    t0 = time.time()
    try:
        preview(out, args.suite, args.tasks, args.episodes, args.size)
    except ValueError as exc:
        print(f"vp-preview: error: {exc}", file=sys.stderr)
        return 2
    print(f"\ndemonstrations: {out / 'data'}\ncontact sheet:  {out / 'splits_contact_sheet.png'}\n"
          f"robosuite:      {out / 'robosuite_splits_contact_sheet.png'}\n"
          f"shift levels:   {out / 'split_levels.png'}\nvideos:         {out / 'videos'}\n"
          f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
