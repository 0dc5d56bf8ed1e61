"""``python -m eval.probe``: does a policy's image encoder know where the task's objects are?

An image policy that fails at the grasp either cannot see the object (check that first with
``python -m vp_envs.observability``) or has not learnt to find it. This separates the two. For the first frame
of N episodes of one cell of a protocol (``test`` by default: layouts no demonstration used), the policy's own
image encoder (BC, Diffusion Policy) turns the frame into its feature vector, exactly as at inference; a ridge
regression from those features, cross-validated over the episodes (``--folds``), predicts each randomised
object's horizontal position. Reported per object:

- ``r2``: the share of the object's position variance the features predict (x and y averaged; 1 is perfect,
  0 is no better than the mean layout), and ``err_cm``, the mean horizontal error of that prediction;
- ``spread_cm``: the error of always guessing the mean position: what knowing nothing costs;
- the same for the same encoder at its random initialisation (``encoder=random-init``): what the architecture
  gives untrained. A trained encoder no better than that has not learnt the object; one far better has, and
  a policy that still misses the object then fails at acting on what it sees, not at seeing it.

    python -m eval.probe runs/train/rs2-bc/checkpoints/last --protocol robosuite-lite-v2 --task Lift Stack \\
        --episodes 100 --out results/probes/rs2-bc.csv

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
    frames, positions = [], {}
    try:
        for index in range(episodes):
            env.next_episode = (task, split, level, index)
            obs, info = env.reset()
            if info.get("error"):
                raise RuntimeError(f"episode {index} of {task}/{split} did not start: {info['error']}")
            frames.append(np.asarray(obs["pixels"][camera]))
            for name, xyz in task_points(proto.suite, task, info["privileged_state"]).items():
                positions.setdefault(name, []).append(xyz)
    finally:
        env.close()
    # a point missing from some episodes (Meta-World's padded second object) is not a point of the task
    return np.stack(frames), {name: np.stack(v) for name, v in positions.items() if len(v) == episodes}


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


def random_init(encoder, seed: int = 0):
    """A copy of ``encoder`` with every parameter re-drawn from its layers' own initialisation."""
    import torch

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


def probe(checkpoints: list[str], protocol: str, tasks: list[str], split: str = "test", episodes: int = 100,
          folds: int = 5) -> pd.DataFrame:
    """One row per (checkpoint, encoder: trained or random-init, task, randomised object)."""
    from eval.policies import load_policy_spec
    from vp_envs.observability import RANDOMISED_CM, span

    if episodes < 2 * folds:
        raise ValueError(f"--episodes {episodes} is too few for {folds} folds (at least {2 * folds})")
    policies = {}
    for spec in checkpoints:
        policy = load_policy_spec(spec)
        if getattr(policy, "encoder", None) is None:
            raise ValueError(f"policy {spec!r} ({type(policy).__name__}) has no image encoder to probe "
                             f"(BC and Diffusion Policy from the image have one)")
        policies[spec] = policy
    rows = []
    for task in tasks:
        by_camera = {}
        for spec, policy in policies.items():
            camera = policy.config.camera
            if camera not in by_camera:
                by_camera[camera] = first_frames(protocol, task, split, episodes, camera)
            frames, positions = by_camera[camera]
            for kind, encoder in (("trained", policy.encoder), ("random-init", random_init(policy.encoder))):
                feats = encoder_features(policy, frames, encoder)
                for name, pos in positions.items():
                    xy = pos[:, :2]
                    if 100 * span(xy) < RANDOMISED_CM:
                        continue  # fixed (the observability check's rule): nothing to find
                    rows.append({"checkpoint": spec, "encoder": kind, "task": task, "object": name,
                                 "split": split, "episodes": episodes, "camera": camera,
                                 **score(feats, xy, folds)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint dirs of image policies (BC, Diffusion Policy)")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--task", nargs="+", required=True, dest="tasks")
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=100, help="first frames of episodes 0..N-1 of the cell")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="CSV of the table (written atomically)")
    args = parser.parse_args(argv)
    from eval.policies import PolicySpecError
    from eval.protocol import ProtocolError

    try:
        df = probe(args.checkpoints, args.protocol, args.tasks, args.split, args.episodes, args.folds)
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
