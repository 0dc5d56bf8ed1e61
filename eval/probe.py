"""``python -m eval.probe``: does a policy's image path know where the task's objects are?

An image policy that fails at the grasp either cannot see the object (check that first with
``python -m vp_envs.observability``) or has not learnt to find it. This separates the two. For the first frame
of N episodes of one cell of a protocol (``test`` by default: layouts no demonstration used), the policy turns
the frame into the features its action prediction reads, exactly as at inference; a ridge regression from those
features, cross-validated over the episodes (``--folds``), predicts each randomised object's horizontal
position. Which features (the ``features`` column):

- BC and Diffusion Policy: ``encoder``, the image encoder's feature vector;
- Video Policy: ``latent``, the autoencoder's latent of the frame (all the video model is shown of it), and
  ``head-first-step`` / ``head-last-step``, the pooled video U-Net features the action head reads at the first
  (pure-noise video) and the last sampling step (the generated future; fixed noise per episode).

Reported per object:

- ``r2``: the share of the object's position variance the features predict (x and y averaged; 1 is perfect,
  0 is no better than the mean layout), and ``err_cm``, the mean horizontal error of that prediction;
- ``spread_cm``: the error of always guessing the mean position: what knowing nothing costs;
- the same for the same network at its random initialisation (``encoder=random-init``): what the architecture
  gives untrained. A trained network no better than that has not learnt the object; one far better has, and
  a policy that still misses the object then fails at acting on what it sees, not at seeing it;
- the same for the frame itself, area-averaged to 16x16 pixels (``checkpoint=(the frame)``, ``features=
  pixels-16x16``): what a linear read of the image gives with no network at all. Features far below it have
  lost what the frame shows.

    python -m eval.probe runs/train/rs2-bc/checkpoints/last --protocol robosuite-lite-v2 --task Lift Stack \\
        --episodes 100 --out results/probes/rs2-bc.csv

A Video Policy checkpoint saved after its ``vae`` or ``video`` stage (``checkpoints/vae``: it cannot act, so
evaluation refuses it) is probed on its latent only: is an autoencoder good enough, before the rest trains?
The frames are rendered once and shared by every checkpoint given. First frames only: the arm has not moved,
so this is the question "where is the object before I reach for it".
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def first_frames(protocol: str, task: str, split: str, episodes: int, camera: str | None = None):
    """(frames (N, H, W, 3) uint8, task points {name: (N, 3)}) for episodes 0..N-1 of (task, split): the
    protocol's camera (``camera``, or its first) and image size; the points are the observability check's
    (``vp_envs.observability.task_points``: objects and goals, not the robot)."""
    obs = first_observations(protocol, task, split, episodes, camera)
    return obs["frames"], obs["positions"]


def first_observations(protocol: str, task: str, split: str, episodes: int, camera: str | None = None) -> dict:
    """:func:`first_frames` and what else a policy reads at the first step: ``frames``, ``positions``,
    ``states`` (N, state_dim) the robot state observations, ``instruction`` the task's sentence."""
    from eval.protocol import load_protocol
    from eval.slot_env import SlotEnv
    from eval.trace import cell_episodes
    from vp_envs.observability import task_points

    proto = load_protocol(protocol)
    level = cell_episodes(proto, task, split)[0].level
    camera = camera or proto.cameras[0]
    if camera not in proto.cameras:
        raise ValueError(f"protocol {proto.name!r} renders {list(proto.cameras)}, not {camera!r}")
    env = SlotEnv(proto.suite, proto.env_kwargs())
    frames, positions, states, instruction = [], {}, [], ""
    try:
        for index in range(episodes):
            env.next_episode = (task, split, level, index)
            obs, info = env.reset()
            if info.get("error"):
                raise RuntimeError(f"episode {index} of {task}/{split} did not start: {info['error']}")
            frames.append(np.asarray(obs["pixels"][camera]))
            states.append(np.asarray(obs["state"], np.float32))
            instruction = str(info["instruction"])
            for name, xyz in task_points(proto.suite, task, info["privileged_state"]).items():
                positions.setdefault(name, []).append(xyz)
    finally:
        env.close()
    # a point missing from some episodes (Meta-World's padded second object) is not a point of the task
    return {"frames": np.stack(frames), "states": np.stack(states), "instruction": instruction,
            "positions": {name: np.stack(v) for name, v in positions.items() if len(v) == episodes}}


def encoder_features(policy, frames: np.ndarray, encoder=None) -> np.ndarray:
    """(N, D) features of ``frames`` through the policy's image encoder (or ``encoder``, e.g. a re-initialised
    copy), preprocessed as :meth:`TorchPolicy.encode_observations` does at inference."""
    import torch

    from vp_agent.policies.modules import center_crop

    encoder = encoder if encoder is not None else policy.encoder
    images = torch.from_numpy(frames).movedim(-1, -3).float() / 255.0
    if policy.config.crop:
        images = center_crop(images, policy.config.crop)
    with torch.no_grad():
        return torch.cat([encoder(b) for b in images.split(64)]).double().numpy()


PIXELS = 16  # the frame's own reference row: its pixels area-averaged to PIXELS x PIXELS


def pixel_features(frames: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(N, size*size*3) the frames area-averaged to ``size`` x ``size``: what a linear read of the image itself
    gives, the reference a policy's features are measured against."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).movedim(-1, -3).float() / 255.0
    return F.interpolate(x, size=(size, size), mode="area").flatten(1).double().numpy()


def is_video_policy(policy) -> bool:
    return getattr(policy, "name", "") == "video_policy"


def video_policy_features(policy, frames: np.ndarray, states: np.ndarray, instruction: str,
                          batch_size: int = 32, head: bool = True) -> dict[str, np.ndarray]:
    """Video Policy's image path for ``frames``: ``latent`` (N, C*h*w), the autoencoder's normalised latent
    the video model is conditioned on, and ``head-first-step`` / ``head-last-step`` (N, feature_dim), the
    pooled U-Net features the action head reads at the first and last sampling step (one sampling run per
    frame, its noise seeded by the frame's index, as :meth:`VideoPolicy.sample` runs at inference); with
    ``head=False`` the latent only."""
    import torch

    images = torch.from_numpy(frames).movedim(-1, -3)
    text = torch.from_numpy(policy.text_encoder.encode([instruction]))
    state = policy.stats["state"].normalize(torch.from_numpy(np.asarray(states, np.float32)))
    out: dict[str, list] = {"latent": [], **({"head-first-step": [], "head-last-step": []} if head else {})}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            img = images[start:start + batch_size]
            out["latent"].append(policy.encode_frames(img).flatten(1))
            if not head:
                continue
            steps: list = []
            policy.sample(img.unsqueeze(1), text.expand(len(img), -1), state[start:start + len(img), None],
                          noise_seeds=list(range(start, start + len(img))), features_out=steps)
            out["head-first-step"].append(steps[0])
            out["head-last-step"].append(steps[-1])
    return {k: torch.cat(v).double().numpy() for k, v in out.items()}


def policy_features(policy, obs: dict, untrained: bool = False) -> dict[str, np.ndarray]:
    """{features name: (N, D)} of the first observations ``obs`` (:func:`first_observations`) through the
    policy's image path; ``untrained``: the same network re-initialised (:func:`random_init`)."""
    if is_video_policy(policy):
        net = random_init(policy) if untrained else policy  # the whole network: autoencoder, U-Net, poolers
        # saved before its action head trained (``probe_stage``): its latent only
        return video_policy_features(net, obs["frames"], obs["states"], obs["instruction"],
                                     head=not getattr(policy, "probe_stage", None))
    encoder = random_init(policy.encoder) if untrained else policy.encoder
    return {"encoder": encoder_features(policy, obs["frames"], encoder)}


def random_init(encoder, seed: int = 0):
    """A copy of ``encoder`` with every parameter re-drawn from its layers' own initialisation; of a Video
    Policy, a new one built from its config (its forward hooks belong to the instance, which a deep copy would
    not move), the latent normalisation left unfitted."""
    import torch

    if is_video_policy(encoder):
        torch.manual_seed(seed)
        return type(encoder)(encoder.config, encoder.stats, encoder.state_dim, encoder.action_dim).eval()
    fresh = copy.deepcopy(encoder)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return fresh


def _ridge_fit(x, y, alpha):
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = (x - mu) / sd
    ym = y.mean(0)
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - ym))
    return lambda q: ((q - mu) / sd) @ w + ym


def _folds(n: int, k: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(0).permutation(n), k)


def cross_validated_predictions(x: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Held-out ridge predictions of ``y`` (N, T) from ``x`` (N, D): each fold is predicted by a ridge fit
    on the others, its strength picked by an inner cross-validation on those others only."""
    pred = np.empty_like(y)
    for test in _folds(len(x), folds):
        train = np.setdiff1d(np.arange(len(x)), test)
        inner = _folds(len(train), min(folds, len(train)))
        best, best_err = ALPHAS[0], np.inf
        for alpha in ALPHAS:
            err = 0.0
            for held in inner:
                fit_rows = np.setdiff1d(np.arange(len(train)), held)
                f = _ridge_fit(x[train[fit_rows]], y[train[fit_rows]], alpha)
                err += ((f(x[train[held]]) - y[train[held]]) ** 2).sum()
            if err < best_err:
                best, best_err = alpha, err
        pred[test] = _ridge_fit(x[train], y[train], best)(x[test])
    return pred


def score(features: np.ndarray, xy: np.ndarray, folds: int = 5) -> dict[str, float]:
    """R^2 (x and y averaged) and mean horizontal error (cm) of cross-validated predictions of ``xy`` (N, 2)
    from ``features``, and the error of always guessing the mean position (``spread_cm``)."""
    pred = cross_validated_predictions(features, xy, folds)
    r2 = 1 - ((pred - xy) ** 2).sum(0) / ((xy - xy.mean(0)) ** 2).sum(0)
    return {"r2": float(r2.mean()), "err_cm": float(np.linalg.norm(pred - xy, axis=1).mean() * 100),
            "spread_cm": float(np.linalg.norm(xy - xy.mean(0), axis=1).mean() * 100)}


def reconstruction_grid(policies: dict, frames: np.ndarray, path: Path, count: int = 8, scale: int = 3) -> Path:
    """PNG (written atomically) of the first ``count`` frames (top row, resized to the first Video Policy's
    autoencoder size) above each Video Policy's autoencoder reconstruction of them, one row per checkpoint in
    ``policies`` order, each pixel drawn ``scale`` x ``scale``: does the latent keep the task's objects?"""
    import imageio.v3 as iio
    import torch

    from eval.runner import atomic_write_bytes
    from vp_agent.policies.video_policy.modeling_video_policy import resize_frames

    vps = [p for p in policies.values() if is_video_policy(p)]
    if not vps:
        raise ValueError("--grid draws Video Policy reconstructions: give at least one Video Policy checkpoint")
    first = torch.from_numpy(frames[:count])
    images = first.movedim(-1, -3)
    size = (vps[0].config.image_size,) * 2
    rows = [resize_frames(first, size)]
    with torch.no_grad():
        rows += [resize_frames(p.decode_latents(p.encode_frames(images)), size) for p in vps]
    grid = torch.cat([torch.cat(list(r), dim=1) for r in rows], dim=0).numpy()
    grid = grid.repeat(scale, 0).repeat(scale, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda tmp: iio.imwrite(tmp, grid, extension=".png"))
    return path


def _load(spec: str):
    """The policy of a checkpoint spec, as evaluation loads it; a Video Policy saved after its ``vae`` or
    ``video`` stage (which cannot act) loads too, marked ``probe_stage``: only its latent is probed."""
    import json

    from eval.policies import NOT_ACTING_STAGES, load_policy_spec

    path = Path(spec)
    try:
        stage = json.loads((path / "config.json").read_text()).get("stage")
    except (OSError, ValueError):
        stage = None
    if stage not in NOT_ACTING_STAGES:
        return load_policy_spec(spec)
    from vp_agent import CheckpointError, load_policy

    try:
        policy = load_policy(path)
    except CheckpointError as exc:
        raise ValueError(f"policy {spec!r}: {exc}") from exc
    policy.probe_stage = stage
    return policy


def probe(checkpoints: list[str], protocol: str, tasks: list[str], split: str = "test", episodes: int = 100,
          folds: int = 5, grid: Path | None = None) -> pd.DataFrame:
    """One row per (checkpoint, encoder: trained or random-init, features, task, randomised object);
    ``grid``: also write :func:`reconstruction_grid` of the first task's frames (Video Policy checkpoints)."""
    from vp_envs.observability import RANDOMISED_CM, span

    if episodes < 2 * folds:
        raise ValueError(f"--episodes {episodes} is too few for {folds} folds (at least {2 * folds})")
    policies = {}
    for spec in checkpoints:
        policy = _load(spec)
        if getattr(policy, "encoder", None) is None and not is_video_policy(policy):
            raise ValueError(f"policy {spec!r} ({type(policy).__name__}) has no image encoder to probe "
                             f"(BC and Diffusion Policy from the image have one, and Video Policy)")
        policies[spec] = policy
    if grid is not None and not any(is_video_policy(p) for p in policies.values()):
        raise ValueError("--grid draws Video Policy reconstructions: give at least one Video Policy checkpoint")
    rows = []
    for task in tasks:
        by_camera = {}
        for spec, policy in policies.items():
            camera = policy.config.camera
            if camera not in by_camera:
                by_camera[camera] = obs = first_observations(protocol, task, split, episodes, camera)
                pixels = pixel_features(obs["frames"])
                for name, pos in obs["positions"].items():  # the reference: a linear read of the frame itself
                    if 100 * span(pos[:, :2]) >= RANDOMISED_CM:
                        rows.append({"checkpoint": "(the frame)", "encoder": "none",
                                     "features": f"pixels-{PIXELS}x{PIXELS}", "task": task, "object": name,
                                     "split": split, "episodes": episodes, "camera": camera,
                                     **score(pixels, pos[:, :2], folds)})
            obs = by_camera[camera]
            for kind in ("trained", "random-init"):
                for features, feats in policy_features(policy, obs, untrained=kind == "random-init").items():
                    for name, pos in obs["positions"].items():
                        xy = pos[:, :2]
                        if 100 * span(xy) < RANDOMISED_CM:
                            continue  # fixed (the observability check's rule): nothing to find
                        rows.append({"checkpoint": spec, "encoder": kind, "features": features, "task": task,
                                     "object": name, "split": split, "episodes": episodes, "camera": camera,
                                     **score(feats, xy, folds)})
        if grid is not None and task == tasks[0]:  # the first Video Policy's camera, and every VP reading it
            camera = next(p for p in policies.values() if is_video_policy(p)).config.camera
            reconstruction_grid({k: p for k, p in policies.items() if p.config.camera == camera},
                                by_camera[camera]["frames"], grid)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint dirs of image policies (BC, Diffusion Policy, Video Policy)")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--task", nargs="+", required=True, dest="tasks")
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=100, help="first frames of episodes 0..N-1 of the cell")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="CSV of the table (written atomically)")
    parser.add_argument("--grid", type=Path, help="PNG of the first task's first frames over each Video Policy's "
                                                  "autoencoder reconstructions of them")
    args = parser.parse_args(argv)
    from eval.policies import PolicySpecError
    from eval.protocol import ProtocolError

    try:
        df = probe(args.checkpoints, args.protocol, args.tasks, args.split, args.episodes, args.folds, args.grid)
    except (ValueError, ProtocolError, PolicySpecError) as exc:
        print(f"eval.probe: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        from eval.trace import write_csv

        write_csv(df, args.out, "%.4g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.drop(columns=["split", "episodes"]).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
