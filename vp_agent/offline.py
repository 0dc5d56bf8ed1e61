"""``python -m vp_agent.offline``: score a checkpoint on held-out demonstrations, without a simulator.

For ``--windows`` (episode, step) windows drawn with a fixed seed from a dataset (e.g. demonstrations recorded
under the ``test`` split), the policy predicts a chunk from the window's observation and is scored against
what the expert did and saw:

- ``action_mse``: mean squared error of the executed part of the chunk (``n_action_steps`` actions) against the
  expert's actions, in the normalised [-1, 1] action space (every policy; ``None`` on action-free video,
  where a Video Policy is scored on its video alone: is the held-out task's future imagined?);
- ``video_psnr``: PSNR (dB) of the generated frames against the real future frames at the same steps
  (Video Policy), next to ``recon_psnr``, the autoencoder's reconstruction of those frames: the ceiling the
  generated video could reach.

- with ``--real-future`` (Video Policy): ``action_mse_real_future``, the same action head reading features of
  the *real* future frames (noised to each sampling step's level with the same noise, as in training) instead
  of its own generated video: the inverse-dynamics ceiling, i.e. what perfect video would buy. Far below
  ``action_mse``: the video is to blame; close to it: the head is. ``per_task`` splits every score by task.

- with ``--image-use``: does the policy read the image? ``image_use.noise_image`` is the mean absolute change
  of the executed actions when every input frame is replaced by uniform noise, ``image_use.shuffled_state``
  the change when each window gets another window's state instead (same windows, same sampling noise). A
  policy that acts from the state alone has ``noise_image`` near 0.

It is cheap (no rendering, no rollouts), so it is the instrument for ablations of inference settings:

    python -m vp_agent.offline runs/train/vp-lite/checkpoints/last data/metaworld-lite-val \\
        --set feature_steps=1 --out results/offline/vp-lite_feature_steps_1.json

Closed-loop success, the number that counts, comes from ``vp-eval``; this is a diagnostic beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vp_agent.policies.base import CheckpointError, load_policy
from vp_envs.stats import psnr


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


@torch.no_grad()
def evaluate(policy, data: list[str], windows: int = 64, seed: int = 0, grid: Path | None = None,
             image_use: bool = False, real_future: bool = False) -> dict:
    """Scores of ``policy`` on ``windows`` windows of the datasets ``data`` (see module docstring).
    ``grid``: also write a PNG of the first 6 windows (Video Policy): current frame | real future | generated.
    ``image_use``: also measure how much the actions depend on the image and on the state.
    ``real_future`` (Video Policy): also score the head on features of the real future (inverse dynamics)."""
    from vp_agent.data import DemoDataset, VideoDataset
    from vp_agent.policies.video_policy.modeling_video_policy import resize_frames
    from vp_envs.dataset import open_dataset

    c = policy.config
    is_video = policy.name == "video_policy"
    if real_future and not is_video:
        raise ValueError(f"real_future scores a Video Policy's action head; {policy.name} has no video model")
    task_of = {}  # instruction -> task name, to split the scores per task
    for root in data:
        for task, tf in open_dataset(Path(root)).items():
            task_of[str(tf.attrs["instruction"])] = task
            tf.close()
    if is_video:
        ds = VideoDataset(data, cameras=tuple(c.cameras), horizon=c.horizon, frame_stride=c.frame_stride,
                          require_actions=False)
    else:
        ds = DemoDataset(data, camera=c.camera, n_obs=c.n_obs, horizon=c.horizon)
    ds.stats = policy.stats  # score in the policy's normalisation, not the held-out data's
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    labelled = ds.indices("action") if is_video else np.arange(len(ds))
    if len(labelled) == 0:  # action-free video: score the generated video on every window
        labelled = np.arange(len(ds))
    rng = np.random.default_rng(seed)
    picks = rng.choice(labelled, size=min(windows, len(labelled)), replace=False)
    act_err, vid, rec, t0, rows = [], [], [], time.time(), []
    real_err, per_task = [], {}
    start = 0 if is_video else c.n_obs - 1
    sl = slice(start, start + c.n_action_steps)

    def predict(item, i, image=None, state=None):
        batch = {k: item[k][None].to(policy.device) for k in ("image", "state", "text")}
        if image is not None:
            batch["image"] = image[None].to(policy.device)
        if state is not None:
            batch["state"] = state[None].to(policy.device)
        torch.manual_seed(seed + int(i))  # the same sampling noise for every variant of a window
        if is_video:
            batch["image"] = batch["image"][:, None]  # (1, n_obs=1, cams, 3, H, W)
            policy._chunk_slots = [0]
        return policy.predict_action_chunk(batch)[0].cpu()

    noise_gen = torch.Generator().manual_seed(seed)
    shuffled = np.roll(picks, 1)  # each window takes the previous window's state
    use_noise, use_state = [], []
    for j, i in enumerate(picks):
        item = ds[int(i)]
        chunk = predict(item, i)
        generated = policy.generated[0] if is_video else None  # before the image-use variants overwrite it
        if image_use:
            other = ds[int(shuffled[j])]["state"]
            use_state.append(float((predict(item, i, state=other) - chunk)[sl].abs().mean()))
            noise = torch.randint(0, 256, item["image"].shape, generator=noise_gen, dtype=torch.uint8)
            use_noise.append(float((predict(item, i, image=noise.to(item["image"].dtype)) - chunk)[sl].abs().mean()))
        e, t = ds.index[int(i)]
        scores = per_task.setdefault(task_of.get(ds.instructions[ds.text_ids[e]], "?"), {"windows": 0})
        scores["windows"] += 1
        valid = ~item["action_is_pad"][sl]
        if valid.any():
            act_err.append(float(((chunk[sl] - item["action"][sl]) ** 2)[valid].mean()))
            scores.setdefault("action_mse", []).append(act_err[-1])
        if is_video:
            frames = ds.frames[e]  # (cams, T+1, H, W, 3)
            future = np.minimum(t + c.frame_stride * np.arange(1, c.num_frames + 1), frames.shape[1] - 1)
            real = frames[:, future]
            gen = generated
            vid.append(psnr(gen, real))
            scores.setdefault("video_psnr", []).append(vid[-1])
            if len(rows) < 6:
                rows.append(np.concatenate([frames[0, t], *real[0], *gen[0]], axis=1))
            real_latents = policy.encode_frames(
                torch.from_numpy(real.reshape(-1, *real.shape[2:])).permute(0, 3, 1, 2).to(policy.device))
            # decoded at config.image_size: back to the frames' size, as the generated video is
            recon = resize_frames(policy.decode_latents(real_latents), real.shape[-3:-1])
            rec.append(psnr(recon.cpu().numpy().reshape(real.shape), real))
            scores.setdefault("recon_psnr", []).append(rec[-1])
            if real_future and valid.any():
                torch.manual_seed(seed + int(i))  # the sampling noise of the generated-video prediction
                b = {k: item[k][None].to(policy.device) for k in ("image", "state", "text")}
                ideal, _ = policy.sample(b["image"], b["text"], b["state"],
                                         real_future=real_latents.reshape(1, -1, *real_latents.shape[1:]))
                real_err.append(float(((ideal[0].cpu()[sl] - item["action"][sl]) ** 2)[valid].mean()))
                scores.setdefault("action_mse_real_future", []).append(real_err[-1])
    if grid is not None and rows:
        import imageio.v3 as iio

        grid.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(grid, np.concatenate(rows, axis=0))
    out = {"windows": len(picks), "action_mse": float(np.mean(act_err)) if act_err else None,
           "action_mse_std": float(np.std(act_err)) if act_err else None,
           "seconds": round(time.time() - t0, 1)}
    if image_use:
        out["image_use"] = {"noise_image": float(np.mean(use_noise)), "shuffled_state": float(np.mean(use_state)),
                            "what": "mean |change| of the executed normalised actions when the frames are "
                                    "replaced by uniform noise, or the state by another window's"}
    if is_video:
        out.update(video_psnr=float(np.mean(vid)), video_psnr_std=float(np.std(vid)), recon_psnr=float(np.mean(rec)))
    if real_err:
        out["action_mse_real_future"] = float(np.mean(real_err))
        out["action_mse_real_future_std"] = float(np.std(real_err))
    out["per_task"] = {task: {k: v if k == "windows" else float(np.mean(v)) for k, v in sorted(sc.items())}
                       for task, sc in sorted(per_task.items())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vp_agent.offline", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a policy checkpoint directory")
    parser.add_argument("data", nargs="+", help="dataset directories (written by vp-data, with actions)")
    parser.add_argument("--windows", type=int, default=64, help="windows scored (default: 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an inference setting of the config, e.g. feature_steps=1")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-use", action="store_true",
                        help="also measure the action change when the image is noise or the state is shuffled")
    parser.add_argument("--real-future", action="store_true",
                        help="Video Policy: also score the action head on features of the real future frames "
                             "(the inverse-dynamics ceiling: perfect video)")
    parser.add_argument("--grid", type=Path, help="Video Policy: write a PNG of 6 windows (now | real future | "
                                                  "generated future)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        policy = load_policy(args.checkpoint)
    except CheckpointError as exc:
        print(f"vp_agent.offline: error: {exc}", file=sys.stderr)
        return 2
    overrides = {}
    for kv in args.set:
        key, _, value = kv.partition("=")
        if not hasattr(policy.config, key):
            print(f"vp_agent.offline: error: {type(policy.config).__name__} has no setting {key!r}", file=sys.stderr)
            return 2
        overrides[key] = _parse_value(value)
    if overrides:
        policy.config = replace(policy.config, **overrides)
    if args.real_future and policy.name != "video_policy":
        print(f"vp_agent.offline: error: --real-future scores a Video Policy's action head; {args.checkpoint} is "
              f"a {policy.name} policy", file=sys.stderr)
        return 2
    scores = {"checkpoint": args.checkpoint, "data": args.data, "overrides": overrides,
              **evaluate(policy, args.data, args.windows, args.seed, args.grid, args.image_use,
                         args.real_future)}
    text = json.dumps(scores, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
