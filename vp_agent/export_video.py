"""``python -m vp_agent.export_video``: write a Video Policy checkpoint's video model (autoencoder, video U-Net,
latent normalisation) as a reusable folder, e.g. after video pretraining on action-free videos::

    vp-train +recipe=vp-pretrain-metaworld "data=[data/metaworld-pretrain-video]" out_dir=runs/train/vp-pretrain
    python -m vp_agent.export_video runs/train/vp-pretrain/checkpoints/video runs/pretrained/metaworld-video
    vp-train +recipe=vp-pretrained-lite-v2 "data=[data/metaworld-lite-v2-train]" \\
        policy.config.video_model=runs/pretrained/metaworld-video

The folder holds ``vae/`` and ``unet/`` (diffusers folders: ``AutoencoderKL.from_pretrained`` and
``UNetSpatioTemporalConditionModel.from_pretrained`` load them) and ``video_model.json`` (the latent
normalisation, the settings a run reusing it must share, and where it came from: checkpoint, steps, data).
A bad checkpoint is reported in one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vp_agent.policies.base import CheckpointError, load_policy


def export(checkpoint: str | Path, out: str | Path) -> Path:
    """Export the video model of the Video Policy checkpoint ``checkpoint`` to the folder ``out``."""
    policy = load_policy(checkpoint)
    if policy.name != "video_policy":
        raise CheckpointError(f"{checkpoint} is a {policy.name} policy: only a video_policy has a video model")
    meta = json.loads((Path(checkpoint) / "config.json").read_text())
    datasets = {root: {"tasks": sorted(m.get("tasks", {})), "episodes": sum(
                    t.get("episodes_kept", 0) for t in m.get("tasks", {}).values()),
                    "action_free": bool(m.get("settings", {}).get("drop_actions"))}
                for root, m in (meta.get("datasets") or {}).items()}
    return policy.save_video_model(out, extra={"source": {"checkpoint": str(checkpoint), "stage": meta.get("stage"),
                                                          "trained_steps": meta.get("trained_steps"),
                                                          "datasets": datasets}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vp_agent.export_video", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a video_policy checkpoint (e.g. runs/train/x/checkpoints/video)")
    parser.add_argument("out", help="folder to write (replaced atomically if it exists)")
    args = parser.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out)
    except (CheckpointError, ValueError) as exc:
        print(f"vp_agent.export_video: error: {exc}", file=sys.stderr)
        return 2
    print(f"video model: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
