"""Turn rollout videos into small GIFs for a README (GitHub plays GIFs inline, not mp4).

    python -m eval.gallery results/runs/metaworld-lite/video_policy/videos/reach-v3/test/ep000_vs_generated.mp4 \\
        --out results/gallery --scale 2

Each ``<run>/videos/<task>/<split>/<episode>.mp4`` becomes ``<out>/<run>_<task>_<split>_<episode>.gif``
(upscaled by ``--scale`` with nearest-neighbour so 64 px frames stay crisp, every ``--every``-th frame), and
``<out>/README.md`` lists them with each episode's outcome read from the run's ``episodes.parquet`` and the
command that made them. The folder is that command's output: GIFs from an earlier call are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _episode_row(video: Path):
    """The parquet row of the episode a rollout video shows (``None`` when it cannot be found)."""
    import pandas as pd

    parts = video.parts
    if "videos" not in parts:
        return None
    k = len(parts) - 1 - parts[::-1].index("videos")
    run_dir, task, cell = Path(*parts[:k]), parts[k + 1], parts[k + 2]
    split, _, level = cell.partition("_L")
    episode = int(video.stem.split("_")[0].removeprefix("ep"))
    try:
        rows = pd.read_parquet(run_dir / "episodes.parquet")
    except (OSError, ValueError):
        return None
    hit = rows[(rows["task"] == task) & (rows["split"] == split) & (rows["level"] == int(level or 1))
               & (rows["episode"] == episode)]
    return None if hit.empty else hit.iloc[0]


def make_gif(video: Path, out: Path, scale: int = 2, every: int = 2, fps: int = 10) -> Path:
    """Write ``video`` as a GIF under ``out``; returns its path. One 128-colour palette for the whole clip
    (taken from a strip of its frames) and no dithering keep a 64 px rollout near 100 KB."""
    import imageio.v3 as iio
    from PIL import Image

    frames = iio.imread(video)[::every]
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    parts = video.parts
    k = len(parts) - 1 - parts[::-1].index("videos") if "videos" in parts else len(parts) - 1
    name = "_".join([*parts[max(0, k - 1):k], *parts[k + 1:-1], video.stem]) + ".gif"
    path = out / name
    strip = Image.fromarray(np.concatenate(list(frames[::4]), axis=0)).quantize(colors=128)
    images = [Image.fromarray(f).quantize(palette=strip, dither=Image.Dither.NONE) for f in frames]
    tmp = path.with_name(f".{path.stem}.tmp.gif")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   optimize=True)
    tmp.replace(path)
    return path


def write_index(out: Path, sources: dict[str, Path], command: str) -> Path:
    """``out/README.md``: each GIF of ``sources`` (GIF name -> video) with its episode's outcome."""
    index = out / "README.md"
    lines = ["# Rollout gallery", "", "Made by `python -m eval.gallery` from the rollout videos of committed runs;",
             "`*_vs_generated` shows the executed frames (left) beside the frame the policy generated for that",
             "moment (right).", "", f"Command: `{command}`", ""]
    for name, src in sources.items():
        gif = out / name
        row = _episode_row(src)
        what = ""
        if row is not None:
            what = (f"{'success' if row['success'] else 'failure'} in {int(row['steps'])} steps"
                    + (f", generated-vs-executed PSNR {row['video_psnr']:.1f} dB"
                       if "video_psnr" in row and row["video_psnr"] == row["video_psnr"] else ""))
        lines += [f"## {gif.stem}", "", f"![{gif.stem}]({gif.name})", "",
                  f"From `{src}`" + (f": {what}." if what else "."), ""]
    tmp = index.with_name(".README.tmp.md")
    tmp.write_text("\n".join(lines))
    tmp.replace(index)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.gallery", description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="+", type=Path, help="rollout mp4s under <run_dir>/videos/")
    parser.add_argument("--out", type=Path, default=Path("results/gallery"))
    parser.add_argument("--scale", type=int, default=2, help="integer upscale (nearest neighbour)")
    parser.add_argument("--every", type=int, default=2, help="keep every n-th frame")
    parser.add_argument("--fps", type=int, default=10, help="GIF playback rate")
    args = parser.parse_args(argv)
    missing = [str(v) for v in args.videos if not v.is_file()]
    if missing:
        print(f"eval.gallery: error: no such video: {', '.join(missing)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for video in args.videos:
        gif = make_gif(video, args.out, args.scale, args.every, args.fps)
        sources[gif.name] = video
        print(f"{video} -> {gif} ({gif.stat().st_size // 1024} KB)")
    for stale in sorted(set(args.out.glob("*.gif")) - {args.out / n for n in sources}):
        print(f"removing {stale} (not made by this command)")
        stale.unlink()
    write_index(args.out, sources, "python -m eval.gallery " + " ".join(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
