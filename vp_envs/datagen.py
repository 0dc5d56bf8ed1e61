"""``vp-data``: roll out the scripted experts under a split and write a dataset (see :mod:`vp_envs.dataset`).

Examples::

    vp-data --tasks pick-place-v3 door-open-v3 --episodes 25 --out data/metaworld-train
    vp-data --tasks held_out --episodes 25 --no-actions --out data/metaworld-newtask-video

Episode ``i`` of a task uses the split's seed for ``i`` (:func:`vp_envs.episode_seed`), so two machines
make the same dataset. Failed expert episodes are left out (``--keep-failed`` keeps them) and counted in
the manifest. A task's file is written atomically when its episodes are done; running the same command
again skips tasks already written with the same settings, so an interrupted run resumes. Until every task of
the command is written, the manifest lists the rest under ``pending`` and readers refuse the dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

import vp_envs
from vp_envs.dataset import Episode, write_json_atomic, write_task_file

# 2: recorded with RENDER_VERSION 2 (Meta-World frames show where each episode put its objects).
GENERATOR_VERSION = 2
log = logging.getLogger("vp-data")


def resolve_tasks(suite: str, names: list[str]) -> list[str]:
    """Expand ``all`` / ``held_out`` / ``train_tasks`` and check every name."""
    known = [e.split("-", 1)[1] for e in vp_envs.list_envs(suite)]
    held_out = list(vp_envs.load_splits(suite).held_out_tasks)
    out: list[str] = []
    for name in names:
        if name == "all":
            out += known
        elif name == "held_out":
            out += held_out
        elif name == "train_tasks":
            out += [t for t in known if t not in held_out]
        elif name in known:
            out.append(name)
        else:
            raise ValueError(f"unknown {suite} task {name!r}; known: all, held_out, train_tasks, {', '.join(known)}")
    return list(dict.fromkeys(out))


def rollout(env, expert, episode_index: int, action_noise: float = 0.0) -> Episode:
    """One expert episode from the split's seed for ``episode_index``.

    ``action_noise`` > 0 (DART, Laskey et al. 2017): the env executes the expert's action plus Gaussian noise of
    that standard deviation on every dimension but the last (the gripper), clipped to the action range, while
    the dataset records the expert's own action. The experts are closed-loop, so the demos then visit states a
    little off the expert's path together with the action that steers back: what a learned policy, which never
    follows the expert exactly, needs to recover. The noise is drawn from a generator seeded by the episode's
    index, so a recording is reproducible."""
    obs, info = env.reset(options={"episode": episode_index})
    rng = np.random.default_rng([episode_index, 0xDA27]) if action_noise > 0 else None
    low, high = env.action_space.low, env.action_space.high
    frames = {c: [obs["pixels"][c]] for c in env.unwrapped.cameras}
    states, priv, actions, rewards, successes = [obs["state"]], [info["privileged_state"]], [], [], []
    done = False
    while not done:
        action = expert(obs, info)
        executed = action
        if rng is not None:
            noise = rng.normal(0.0, action_noise, size=np.shape(action)).astype(np.float32)
            noise[-1] = 0.0  # the gripper command stays the expert's
            executed = np.clip(action + noise, low, high).astype(np.asarray(action).dtype)
        obs, reward, terminated, truncated, info = env.step(executed)
        for c in frames:
            frames[c].append(obs["pixels"][c])
        states.append(obs["state"])
        priv.append(info["privileged_state"])
        actions.append(action)
        rewards.append(reward)
        successes.append(info["success"])
        done = terminated or truncated
    return Episode(frames={c: np.stack(v) for c, v in frames.items()}, state=np.stack(states),
                   privileged_state=np.stack(priv), actions=np.stack(actions),
                   rewards=np.asarray(rewards, np.float32), successes=np.asarray(successes, bool),
                   seed=int(info["seed"]), episode_index=episode_index)


def generate(suite: str, tasks: list[str], split: str, episodes: int, out: str | Path, *,
             level: int | None = None, cameras: tuple[str, ...] | None = None, size: int = 64,
             max_steps: int = 500, drop_actions: bool = False, keep_failed: bool = False,
             max_attempts: int | None = None, action_noise: float = 0.0, expert_version: int | None = None,
             progress: bool = True) -> dict:
    """Write a dataset of ``episodes`` kept episodes per task to ``out``; returns the manifest.
    ``action_noise``: see :func:`rollout` (0: the expert's own actions are executed). ``expert_version``: the
    scripted experts as of that version (None: the latest; :func:`vp_envs.expert_versions`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = resolve_tasks(suite, tasks)
    vp_envs.load_splits(suite).split(split)  # fail early on a bad split name
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive; got {episodes}")
    if not 0.0 <= action_noise < 1.0:
        raise ValueError(f"--action-noise must be in [0, 1) (a standard deviation in action units); got {action_noise}")
    max_attempts = max_attempts or 2 * episodes + 5
    settings = dict(suite=suite, split=split, level=level, episodes=episodes, size=size, max_steps=max_steps,
                    cameras=list(cameras) if cameras else None, drop_actions=drop_actions,
                    keep_failed=keep_failed, max_attempts=max_attempts, generator_version=GENERATOR_VERSION)
    if action_noise:  # only when used, so that the settings hash of every earlier dataset stays what it was
        settings["action_noise"] = action_noise
    if expert_version is not None and expert_version < 1:
        raise ValueError(f"--expert-version must be 1 or more; got {expert_version}")
    # per task, in the manifest's task entries (absent: version 1, every dataset made before versions existed)
    versions = vp_envs.expert_versions(suite, tasks, expert_version)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("settings_hash") not in (None, key):
        raise ValueError(f"{out} holds a dataset made with other settings ({manifest_path}); "
                         f"use another --out or delete it")
    stale = [f"{t} (recorded with version {manifest['tasks'][t].get('expert_version', 1)}, wanted "
             f"{versions.get(t, 1)})" for t in tasks if t in manifest.get("tasks", {})
             and (out / f"{t}.hdf5").exists() and manifest["tasks"][t].get("expert_version", 1) != versions.get(t, 1)]
    if stale:
        raise ValueError(f"{out} holds demos of another version of the scripted expert: {', '.join(stale)}; "
                         f"use another --out, delete it, or pass --expert-version to remake the old demos")
    splits = vp_envs.load_splits(suite)
    manifest.update(format="vp-bench-dataset", generator_version=GENERATOR_VERSION, settings=settings,
                    settings_hash=key, split_file_version=splits.version, render_version=vp_envs.RENDER_VERSION,
                    versions=_versions(), created=manifest.get("created", time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    manifest.setdefault("tasks", {})
    # Tasks this command still has to write: readers (open_dataset) refuse the dataset until the list is empty,
    # so a training started during a recording, or after an interrupted one, cannot run on some of the tasks.
    manifest["pending"] = [t for t in tasks
                           if not (t in manifest["tasks"] and (out / f"{t}.hdf5").exists())]
    if manifest["pending"]:
        write_json_atomic(manifest_path, manifest)

    bar = tqdm(total=episodes * len(tasks), desc=f"vp-data {split}", unit="ep", disable=not progress)
    for task in tasks:
        if task in manifest["tasks"] and (out / f"{task}.hdf5").exists():
            bar.update(episodes)
            log.info("skip %s: already written", task)
            continue
        env_kwargs = dict(split=split, level=level, width=size, height=size, max_episode_steps=max_steps,
                          terminate_on_success=True)
        if cameras:
            env_kwargs["cameras"] = tuple(cameras)
        env = vp_envs.make(f"vp/{suite}-{task}", **env_kwargs)
        expert = vp_envs.scripted_expert(env, expert_version)
        kept: list[Episode] = []
        tried = failed = errors = 0
        error_log: list[str] = []
        t0 = time.time()
        index = 0
        while len(kept) < episodes and tried < max_attempts:
            tried += 1
            try:
                ep = rollout(env, expert, index, action_noise)
            except Exception as exc:  # noqa: BLE001 - one broken episode must not end the run
                errors += 1
                error_log.append(f"episode {index}: {type(exc).__name__}: {exc}")
                log.warning("%s episode %d raised:\n%s", task, index, traceback.format_exc())
                index += 1
                continue
            index += 1
            if not ep.success:
                failed += 1
                if not keep_failed:
                    continue
            kept.append(ep)
            bar.update(1)
            bar.set_postfix(task=task, kept=len(kept), failed=failed)
        env.close()
        attrs = dict(suite=suite, task=task, instruction=env.unwrapped.instruction, split=split,
                     level=env.unwrapped.level, cameras=list(env.unwrapped.cameras),
                     state_mode=env.unwrapped.state_mode)
        write_task_file(out / f"{task}.hdf5", kept, attrs=attrs, drop_actions=drop_actions)
        manifest["tasks"][task] = dict(
            episodes_tried=tried, episodes_kept=len(kept), expert_failures=failed, errors=errors,
            error_log=error_log, expert_success_rate=round((tried - failed - errors) / max(tried, 1), 4),
            steps=int(sum(ep.num_steps for ep in kept)), seconds=round(time.time() - t0, 1),
            instruction=attrs["instruction"])
        if versions.get(task, 1) != 1:
            manifest["tasks"][task]["expert_version"] = versions[task]
        manifest["pending"] = [t for t in manifest["pending"] if t != task]
        if len(kept) < episodes:
            log.warning("%s: only %d of %d episodes kept after %d attempts", task, len(kept), episodes, tried)
        write_json_atomic(manifest_path, manifest)
        bar.update(episodes - len(kept))
    bar.close()
    manifest.pop("pending", None)
    write_json_atomic(manifest_path, manifest)
    return manifest


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("vp-bench", "metaworld", "robosuite", "mujoco", "gymnasium", "numpy", "h5py"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vp-data", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="metaworld", help="simulator suite (default: metaworld)")
    p.add_argument("--tasks", nargs="+", required=True,
                   help="task names, or 'all', 'held_out' (the new_task set), 'train_tasks' (all but held out)")
    p.add_argument("--split", default="train", help="split to record under (default: train)")
    p.add_argument("--level", type=int, default=None, help="shift level for graded splits")
    p.add_argument("--episodes", type=int, default=25, help="kept episodes per task (default: 25)")
    p.add_argument("--out", required=True, help="dataset directory")
    p.add_argument("--cameras", nargs="+", default=None, help="cameras to record (default: the suite's)")
    p.add_argument("--size", type=int, default=64, help="square image size in pixels (default: 64)")
    p.add_argument("--max-steps", type=int, default=500, help="step limit per episode (default: 500)")
    p.add_argument("--no-actions", action="store_true", help="drop actions: an action-free video dataset")
    p.add_argument("--keep-failed", action="store_true", help="keep episodes the expert failed")
    p.add_argument("--max-attempts", type=int, default=None, help="episodes tried per task (default: 2N+5)")
    p.add_argument("--action-noise", type=float, default=0.0,
                   help="DART: execute the expert's action plus Gaussian noise of this std (not on the gripper), "
                        "record the expert's own action (default: 0, no noise)")
    p.add_argument("--expert-version", type=int, default=None,
                   help="record with the scripted experts as of this version, e.g. 1 to remake a dataset from "
                        "before robosuite Stack's expert changed (default: the latest)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        manifest = generate(args.suite, args.tasks, args.split, args.episodes, args.out, level=args.level,
                            cameras=args.cameras, size=args.size, max_steps=args.max_steps,
                            drop_actions=args.no_actions, keep_failed=args.keep_failed,
                            max_attempts=args.max_attempts, action_noise=args.action_noise,
                            expert_version=args.expert_version)
    except ValueError as exc:
        print(f"vp-data: error: {exc}", file=sys.stderr)
        return 2
    for task, row in manifest["tasks"].items():
        print(f"{task:32s} kept {row['episodes_kept']:3d}/{row['episodes_tried']:3d}  "
              f"expert success {row['expert_success_rate']:.0%}  errors {row['errors']}")
    print(f"dataset: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
