"""The rollout runner: every episode of a protocol, for one policy, into ``<run_dir>/episodes.parquet``.

>>> from eval.runner import run
>>> run("metaworld-lite", "expert", run_dir="results/runs/metaworld-lite/expert", num_envs=2)

What it guarantees:

- **One row per episode** (:data:`ROW_COLUMNS`), keyed by ``(task, split, level, episode)``. Rows are
  written atomically (temporary file + ``os.replace``) each time an episode ends, so a killed run loses at
  most the episodes that were in flight.
- **Resume**: rerunning with the same protocol, policy and ``run_dir`` skips the keys already in the file.
  A run directory belongs to one (protocol hash, policy spec, checkpoint hash); anything else is refused.
  Rows record their split's version (``split_version``); rows of a split whose definition has changed since
  are moved to ``episodes_superseded.parquet`` and run again.
- **Determinism**: an episode's rows depend only on the episode and the policy, not on ``num_envs``, the
  vector mode or the order episodes ran in (tested), as long as the policy keeps per-slot state only.
  ``wall_time_s`` and ``finished_at`` are timings and are the only columns that differ between runs.
- **Failures stay local**: an exception in the simulator (caught in the slot, see
  :mod:`eval.slot_env`) or in the policy ends that episode with ``success=False`` and the exception in
  ``error``; the run goes on. A batched ``act`` that raises is retried slot by slot so only the episodes
  that really fail are marked.
- **Vectorised**: ``num_envs`` slots step together and the policy is called once per step on the batch of
  live slots. ``vector="async"`` puts each slot in a worker process (``gymnasium.vector.AsyncVectorEnv``,
  ``context="spawn"``: Mesa's EGL does not survive a fork after rendering); ``vector="sync"`` keeps them
  in this process. See ``eval/conf/eval.yaml`` for the measured choice.

Also written: ``manifest.json`` (versions, machine, git commit, protocol hash, one entry per session) and
the first ``videos_per_cell`` episodes of each (task, split, level) as mp4 under ``videos/``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import vp_envs
from eval.policies import ImageAblation, Policy, load_policy_spec, policy_slug, with_inference
from eval.protocol import EpisodeSpec, Protocol, load_protocol
from eval.slot_env import IDLE, format_error, make_slot_env
from vp_envs.stats import psnr

log = logging.getLogger("vp-eval")

KEY = ["task", "split", "level", "episode"]
ROW_COLUMNS = ["policy", "checkpoint_hash", "protocol", "protocol_version", "protocol_sha256", "suite",
               "task", "split", "level", "episode", "seed", "success", "steps", "return", "error",
               "vp_bench_version", "render_version", "split_version", "wall_time_s", "finished_at", "video_psnr"]
TIMING_COLUMNS = ["wall_time_s", "finished_at"]  # the only columns allowed to differ between reruns
BACKENDS = ("local", "ray")
# What a policy under test receives in info (besides "slot"): the instruction and episode bookkeeping. Not
# the reward, return or success (a shaped distance-to-goal reward is privileged information), not the task
# or split names, not the simulator's state.
POLICY_INFO = ("instruction", "suite", "episode", "seed", "steps", "active")
VECTOR_MODES = ("async", "sync")
MANIFEST_PACKAGES = ("vp-bench", "numpy", "gymnasium", "mujoco", "metaworld", "robosuite", "torch",
                     "diffusers", "stable-baselines3", "pandas", "pyarrow", "hydra-core", "imageio")


class RunError(RuntimeError):
    """A run that cannot start (bad settings, or a run_dir that belongs to another protocol/policy)."""


# ---------------------------------------------------------------------------------------------- files
def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS).sort_values(KEY, kind="stable").reset_index(drop=True)
    atomic_write_bytes(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return pd.read_parquet(path).to_dict("records")


def row_render_version(row: dict[str, Any]) -> int:
    """The ``render_version`` of a row; rows written before the column existed are version 1."""
    value = row.get("render_version")
    return 1 if value is None or pd.isna(value) else int(value)


def row_split_version(row: dict[str, Any]) -> int:
    """The ``split_version`` of a row (the version of its split's definition, ``vp_envs.splits``); rows written
    before the column existed are version 1."""
    value = row.get("split_version")
    return 1 if value is None or pd.isna(value) else int(value)


def current_split_version(suite: str, split: str) -> int | None:
    """The version of ``split`` as this package defines it, or None for a suite or split it does not know."""
    try:
        return vp_envs.load_splits(suite).split(split).version
    except (ValueError, KeyError, FileNotFoundError):
        return None


def package_versions() -> dict[str, str]:
    out = {}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(start: Path | None = None) -> str | None:
    """The checkout's HEAD commit, read from ``.git`` files (no subprocess; None outside a checkout)."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = Path(git.read_text().split(":", 1)[1].strip())
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(" ", 1)[1]
        common = git / "commondir"
        roots = [git] + ([(git / common.read_text().strip()).resolve()] if common.is_file() else [])
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        return None
    return None


def environment_record() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(), "packages": package_versions(), "git_commit": git_commit(),
            "mujoco_gl": os.environ.get("MUJOCO_GL")}


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda tmp: imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1))


# ---------------------------------------------------------------------------------------------- vector
def make_vector(protocol: Protocol, num_envs: int, vector: str):
    """``num_envs`` :class:`~eval.slot_env.SlotEnv` slots, in worker processes or in this one."""
    import gymnasium as gym

    if vector not in VECTOR_MODES:
        raise RunError(f"unknown vector mode {vector!r}; known: {', '.join(VECTOR_MODES)}")
    fns = [functools.partial(make_slot_env, protocol.suite, protocol.env_kwargs()) for _ in range(num_envs)]
    if vector == "async" and num_envs > 1:
        return gym.vector.AsyncVectorEnv(fns, context="spawn", shared_memory=True)
    return gym.vector.SyncVectorEnv(fns)


def unbatch_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's dict-of-arrays infos back into one dict per slot."""
    return [{k: v[i] for k, v in infos.items() if not k.startswith("_")} for i in range(n)]


def select(obs: Any, idx: np.ndarray) -> Any:
    return {k: select(v, idx) for k, v in obs.items()} if isinstance(obs, dict) else obs[idx]


# ---------------------------------------------------------------------------------------------- run
class Runner:
    """Rolls a policy through a protocol; :func:`run` is the usual entry point."""

    def __init__(self, protocol: Protocol, policy: Policy, run_dir: Path, num_envs: int = 2,
                 vector: str = "async", videos_per_cell: int = 2, video_fps: int = 20,
                 retry_errors: bool = False, progress: bool = True,
                 episodes: Sequence[EpisodeSpec] | None = None, render_on_demand: bool = True):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise RunError(f"num_envs must be a positive integer; got {num_envs!r}")
        if vector not in VECTOR_MODES:
            raise RunError(f"unknown vector mode {vector!r}; known: {', '.join(VECTOR_MODES)}")
        self.protocol, self.policy, self.run_dir = protocol, policy, Path(run_dir)
        bind = getattr(policy, "bind_protocol", None)  # optional (Policy's default: nothing); the expert hashes
        if bind is not None:                           # the versions of the experts it will play
            bind(protocol)
        self.action_dim = vp_envs.suite_spec(protocol.suite).action_dim
        self.num_envs, self.vector = num_envs, vector
        self.videos_per_cell = videos_per_cell if protocol.cameras else 0
        self.video_fps, self.retry_errors, self.progress = video_fps, retry_errors, progress
        # Render a slot's next frame only when someone reads it: the policy (Policy.needs_frame), a filmed
        # episode, or the video score of a policy that generates video. Rows are the same either way
        # (tests/test_eval_render_on_demand.py); False renders every step.
        self.render_on_demand = render_on_demand
        self.episodes = list(episodes) if episodes is not None else protocol.episodes()
        self.parquet = self.run_dir / "episodes.parquet"
        self.manifest_path = self.run_dir / "manifest.json"
        self.superseded = self.run_dir / "episodes_superseded.parquet"  # rows of an older split version
        try:
            self.version = importlib.metadata.version("vp-bench")
        except importlib.metadata.PackageNotFoundError:
            self.version = "unknown"

    # --------------------------------------------------------------------------------- bookkeeping
    def _load_existing(self) -> list[dict[str, Any]]:
        rows = read_rows(self.parquet)
        for field, want in (("protocol_sha256", self.protocol.sha256), ("policy", self.policy.spec),
                            ("checkpoint_hash", self.policy.checkpoint_hash)):
            seen = {r[field] for r in rows}
            if seen and seen != {want}:
                raise RunError(f"run_dir {str(self.run_dir)!r} holds rows with {field}={sorted(seen)!r}, but this "
                               f"run has {field}={want!r}; use another run_dir (a run dir is one protocol "
                               f"and one policy)")
        versions = {row_render_version(r) for r in rows}
        if versions and versions != {vp_envs.RENDER_VERSION}:
            raise RunError(f"run_dir {str(self.run_dir)!r} holds rows rendered with render_version "
                           f"{sorted(versions)!r}, but this package renders version {vp_envs.RENDER_VERSION} "
                           f"(see vp_envs.RENDER_VERSION); its episodes would not be comparable: use a new run_dir")
        stale = [r for r in rows if row_split_version(r) != current_split_version(self.protocol.suite, r["split"])]
        if stale:
            # a split whose definition changed since these rows were made: keep them aside, run them again
            kept = read_rows(self.superseded)
            seen = {(tuple(r[k] for k in KEY), row_split_version(r)) for r in kept}
            kept += [r for r in stale if (tuple(r[k] for k in KEY), row_split_version(r)) not in seen]
            write_rows(self.superseded, kept)
            log.warning("%s: %d rows of splits whose definition changed (%s) moved to %s; they run again",
                        self.run_dir, len(stale), ", ".join(sorted({r["split"] for r in stale})), self.superseded)
            rows = [r for r in rows if r not in stale]
        if self.retry_errors:
            rows = [r for r in rows if not r["error"]]
        return rows

    def _write_manifest(self, session: dict[str, Any]) -> None:
        manifest: dict[str, Any] = {}
        if self.manifest_path.is_file():
            manifest = json.loads(self.manifest_path.read_text())
        sessions = [s for s in manifest.get("sessions", []) if s.get("start") != session["start"]]
        manifest.update({
            "protocol": {"name": self.protocol.name, "version": self.protocol.version,
                         "sha256": self.protocol.sha256, "source": self.protocol.source},
            "policy": {"spec": self.policy.spec, "checkpoint_hash": self.policy.checkpoint_hash,
                       "training": self.policy.training_record,
                       **({"expert_versions": self.policy.expert_versions}
                          if getattr(self.policy, "expert_versions", None) else {})},
            "episodes_total": len(self.episodes),
            "protocol_episodes_total": len(self.protocol.episodes()),  # > episodes_total: a partial run
            "sessions": sessions + [session],
        })
        text = json.dumps(manifest, indent=2, default=str) + "\n"
        atomic_write_bytes(self.manifest_path, lambda tmp: tmp.write_text(text))

    def _row(self, ep: EpisodeSpec, info: dict[str, Any], error: str, wall: float) -> dict[str, Any]:
        return {
            "policy": self.policy.spec, "checkpoint_hash": self.policy.checkpoint_hash,
            "protocol": self.protocol.name, "protocol_version": self.protocol.version,
            "protocol_sha256": self.protocol.sha256, "suite": self.protocol.suite,
            "task": ep.task, "split": ep.split, "level": int(ep.level), "episode": int(ep.index),
            "seed": int(info["seed"]), "success": bool(info["success"]) and not error,
            "steps": int(info["steps"]), "return": float(info["return"]), "error": error,
            "vp_bench_version": self.version, "render_version": vp_envs.RENDER_VERSION,
            "split_version": current_split_version(self.protocol.suite, ep.split) or 1,
            "wall_time_s": round(wall, 4), "finished_at": now_iso(),
        }

    # --------------------------------------------------------------------------------- main loop
    def run(self) -> pd.DataFrame:
        from tqdm import tqdm

        self.run_dir.mkdir(parents=True, exist_ok=True)
        rows = self._load_existing()
        done = {tuple(r[k] for k in KEY) for r in rows}
        pending = [ep for ep in self.episodes if (ep.task, ep.split, ep.level, ep.index) not in done]
        session = {"start": now_iso(), "end": None, "status": "running", "num_envs": self.num_envs,
                   "vector": self.vector, "episodes_before": len(rows), "episodes_pending": len(pending),
                   "environment": environment_record(),
                   # sessions without it loaded trained policies in torch's training mode (crops, dropout)
                   "inference_mode": "eval"}
        self._write_manifest(session)
        log.info("%s: %d episodes already done, %d to run", self.run_dir, len(rows), len(pending))
        bar = tqdm(total=len(self.episodes), initial=len(self.episodes) - len(pending), unit="ep",
                   desc=f"{self.protocol.name} {self.policy.spec}", disable=not self.progress, dynamic_ncols=True)
        try:
            if pending:
                self._rollout(pending, rows, bar)
            session.update(status="finished")
        except BaseException as exc:  # KeyboardInterrupt included: say so in the manifest, then re-raise
            session.update(status=f"stopped: {format_error(exc)}")
            raise
        finally:
            bar.close()
            session["end"] = now_iso()
            session["episodes_after"] = len(rows)
            self._write_manifest(session)
        return pd.read_parquet(self.parquet) if self.parquet.is_file() else pd.DataFrame(columns=ROW_COLUMNS)

    def _rollout(self, pending: list[EpisodeSpec], rows: list[dict[str, Any]], bar) -> None:
        n = min(self.num_envs, len(pending))
        queue = list(reversed(pending))  # pop() from the end = protocol order
        vec = make_vector(self.protocol, n, self.vector)
        slots: list[EpisodeSpec | None] = [None] * n
        started = [0.0] * n
        frames: list[list[np.ndarray] | None] = [None] * n
        self._frames, self._generated, self._film = frames, {}, [False] * n
        self._scored: list[set[int]] = [set() for _ in range(n)]  # frame indices a video score will read
        # A policy that generates video (Video Policy) gets a per-episode score of its video against what
        # was then executed (row column video_psnr), so every episode's frames are kept while it runs.
        camera = self.protocol.cameras[0] if self.protocol.cameras else None
        self._scores_video = isinstance(self.policy.generated, dict) and camera is not None
        try:
            while queue or any(s is not None for s in slots):
                # 1. hand free slots their next episode, start them
                assign: list[Any] = [None] * n
                for i in range(n):
                    if slots[i] is None and queue:
                        ep = queue.pop()
                        slots[i], started[i] = ep, time.perf_counter()
                        assign[i] = (ep.task, ep.split, ep.level, ep.index)
                        self._film[i] = ep.index < self.videos_per_cell
                        self._scored[i] = set()
                        frames[i] = [] if (self._film[i] or self._scores_video) else None
                if any(a is not None for a in assign):
                    vec.set_attr("next_episode", assign)
                    obs, infos = vec.reset()
                    self.policy.reset([i for i in range(n) if assign[i] is not None])
                infos_l = unbatch_infos(infos, n)
                self._keep_frames(obs, camera, frames, slots, range(n), assign)
                finished = self._collect(infos_l, slots, started, frames, rows, bar)
                live = [i for i in range(n) if slots[i] is not None]
                if not live:
                    if finished:
                        write_rows(self.parquet, rows)
                    continue
                # 2. one batched policy call for the live slots
                actions = np.zeros((n, self.action_dim), np.float32)
                failed = self._act(obs, infos_l, live, actions)
                if failed:  # end those episodes now, record the policy's error
                    for i, err in failed.items():
                        self._finish(i, infos_l[i], err, slots, started, frames, rows, bar)
                    vec.set_attr("next_episode", [IDLE if i in failed else None for i in range(n)])
                    obs, infos = vec.reset()
                    finished += len(failed)
                    live = [i for i in live if i not in failed]
                # 3. step every slot (idle and finished slots ignore their action)
                if live:
                    fresh = self._wanted_frames(slots, frames)
                    if not all(fresh):
                        vec.set_attr("render_next", fresh)
                    obs, _, _, _, infos = vec.step(actions)
                    infos_l = unbatch_infos(infos, n)
                    self._keep_frames(obs, camera, frames, slots, live, None, fresh)
                    finished += self._collect(infos_l, slots, started, frames, rows, bar)
                if finished:
                    write_rows(self.parquet, rows)
        finally:
            vec.close()
        write_rows(self.parquet, rows)

    def _act(self, obs, infos_l, live, actions) -> dict[int, str]:
        """Fill ``actions[live]``; return ``{slot: error}`` for slots whose policy call raised."""
        idx = np.asarray(live)
        # A policy under test sees its observation, the instruction and the episode's bookkeeping
        # (POLICY_INFO); the simulator's full state, the shaped reward, success and the split go only to
        # policies that declare they are references (the scripted expert, privileged-state ceilings).
        if self.policy.privileged:
            batch_infos = [{**infos_l[i], "slot": i} for i in live]
        else:
            batch_infos = [{**{k: infos_l[i][k] for k in POLICY_INFO if k in infos_l[i]}, "slot": i} for i in live]
        try:
            out = np.asarray(self.policy.act(select(obs, idx), batch_infos), np.float32)
            if out.shape != (len(live), self.action_dim):
                raise ValueError(f"policy returned actions of shape {out.shape}; "
                                 f"expected ({len(live)}, {self.action_dim})")
            actions[idx] = out
            self._keep_generated(live)
            return {}
        except Exception as exc:
            if len(live) == 1:  # nothing to narrow down; do not call a stateful policy twice
                return {live[0]: "policy: " + format_error(exc)}
        failed = {}
        for i in live:  # retry alone so that only the episodes that really fail are marked
            try:
                out = np.asarray(self.policy.act(select(obs, np.asarray([i])), [batch_infos[live.index(i)]]),
                                 np.float32)
                if out.shape != (1, self.action_dim):
                    raise ValueError(f"policy returned actions of shape {out.shape}; "
                                     f"expected (1, {self.action_dim})")
                actions[i] = out[0]
                self._keep_generated([i])
            except Exception as exc:
                failed[i] = "policy: " + format_error(exc)
        return failed

    def _wanted_frames(self, slots, frames) -> list[bool]:
        """Per slot: does anyone read the frames of the observation the next step returns? The policy
        (``needs_frame``), a filmed episode (every frame), or a video score (the frames its generated video is
        compared with). Unread frames are not rendered: that observation repeats the slot's previous frames."""
        if not self.render_on_demand or not self.protocol.cameras:
            return [True] * len(slots)
        needs = getattr(self.policy, "needs_frame", None)
        out = []
        for i, ep in enumerate(slots):
            if ep is None:
                out.append(False)
                continue
            nxt = len(frames[i]) if frames[i] is not None else -1  # index of the next frame kept
            out.append(bool(self._film[i] or nxt in self._scored[i] or needs is None or needs(i)))
        return out

    def _keep_generated(self, live) -> None:
        """Policies that generate video (Video Policy) expose ``generated[slot]``: (cams, F, H, W, 3) frames of
        their last chunk. Keep each new one with the step it was made at, for the episodes filmed."""
        generated = self.policy.generated
        if not isinstance(generated, dict):
            return
        for i in live:
            video, kept = generated.get(i), self._generated.setdefault(i, [])
            if video is not None and self._frames[i] is not None and (not kept or kept[-1][1] is not video):
                start = len(self._frames[i]) - 1
                kept.append((start, video))
                self._scored[i].update(start + (j + 1) * self._stride() for j in range(video.shape[1]))

    def _stride(self) -> int:
        return max(1, int(getattr(self.policy.config, "frame_stride", 1)))

    def _video_psnr(self, i) -> float:
        """Mean PSNR (dB) of every generated frame against the executed frame at the step it was generated
        for (chunk made at step s: frame j shows step s + (j+1) * frame_stride; frames past the episode's end
        are not scored). NaN when the policy generated nothing."""
        kept, executed = self._generated.get(i, []), self._frames[i] or []
        stride, scores = self._stride(), []
        for start, video in kept:
            for j in range(video.shape[1]):
                t = start + (j + 1) * stride
                if t < len(executed) and executed[t] is not None and video[0, j].shape == executed[t].shape:
                    scores.append(psnr(video[0, j], executed[t]))
        return float(np.mean(scores)) if scores else float("nan")

    def _write_side_by_side(self, i, name: str) -> None:
        """Executed frames (left) beside what the policy generated for them (right): the generated frame shown
        at step t is the one the last chunk predicted for the next frame_stride steps."""
        kept, executed = self._generated.get(i, []), self._frames[i]
        if not kept or not executed:
            return
        stride = self._stride()
        out, k = [], 0
        for t, frame in enumerate(executed):
            while k + 1 < len(kept) and kept[k + 1][0] <= t:
                k += 1
            start, video = kept[k]
            gen = video[0, min(max(t - start, 0) // stride, video.shape[1] - 1)]
            if gen.shape != frame.shape:
                continue
            out.append(np.concatenate([frame, gen], axis=1))
        if out:
            write_video(self.run_dir / "videos" / name.replace(".mp4", "_vs_generated.mp4"), out, self.video_fps)

    def _keep_frames(self, obs, camera, frames, slots, which, assign, fresh=None):
        """Append each kept episode's new frame (``None`` where it was not rendered: ``fresh[i]`` False)."""
        if camera is None:
            return
        for i in which:
            if frames[i] is not None and slots[i] is not None and (assign is None or assign[i] is not None):
                rendered = fresh is None or fresh[i]
                frames[i].append(np.array(obs["pixels"][camera][i], copy=True) if rendered else None)

    def _collect(self, infos_l, slots, started, frames, rows, bar) -> int:
        count = 0
        for i, info in enumerate(infos_l):
            if slots[i] is not None and info["active"] and info["done"]:
                self._finish(i, info, str(info["error"]), slots, started, frames, rows, bar)
                count += 1
        return count

    def _finish(self, i, info, error, slots, started, frames, rows, bar) -> None:
        ep = slots[i]
        video_psnr = self._video_psnr(i) if self._scores_video else float("nan")
        if frames[i] and self._film[i]:
            name = f"{ep.task}/{ep.split}" + (f"_L{ep.level}" if ep.level != 1 else "") + f"/ep{ep.index:03d}.mp4"
            try:
                write_video(self.run_dir / "videos" / name, frames[i], self.video_fps)
                self._write_side_by_side(i, name)
            except Exception as exc:  # a video is a convenience; never lose the row for it
                log.warning("could not write video %s: %s", name, format_error(exc))
        self._generated.pop(i, None)
        rows.append({**self._row(ep, info, error, time.perf_counter() - started[i]), "video_psnr": video_psnr})
        slots[i], frames[i] = None, None
        bar.update(1)
        if error:
            log.warning("episode %s/%s/L%d/%d failed: %s", ep.task, ep.split, ep.level, ep.index, error)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise RunError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise RunError('backend=ray needs Ray, which is not installed: pip install -e ".[ray]" '
                       "(or use backend=local)")


def check_observation_fit(protocol: Protocol, policy: Policy) -> None:
    """Refuse a trained policy whose camera or image size is not the protocol's, before any rollout (its
    rows would measure a camera mismatch, not the policy). Policies that record neither pass."""
    config = policy.config
    if config is None or not getattr(config, "use_image", True):
        return
    cameras = tuple(getattr(config, "cameras", ()) or ((config.camera,) if getattr(config, "camera", None) else ()))
    missing = [c for c in cameras if c not in protocol.cameras]
    if missing:
        raise RunError(f"policy {policy.spec!r} reads camera(s) {', '.join(missing)}, but protocol "
                       f"{protocol.name!r} renders {', '.join(protocol.cameras) or 'no camera'}")
    record = policy.training_record
    sizes = set(record.get("image_sizes") or ()) if isinstance(record, dict) else set()
    if sizes and not (protocol.image_size[0] == protocol.image_size[1] and protocol.image_size[0] in sizes):
        raise RunError(f"policy {policy.spec!r} was trained on {', '.join(map(str, sorted(sizes)))}-px images, "
                       f"but protocol {protocol.name!r} renders {protocol.image_size[0]}x{protocol.image_size[1]}")


def untrained_tasks(protocol: Protocol, policy: Policy) -> list[str]:
    """The protocol's training tasks that a checkpoint had no demonstrations of (logged as a warning: its
    rows measure a partial training, e.g. one started before its dataset was fully recorded). Empty when
    the checkpoint records no task list."""
    record = policy.training_record
    seen = record.get("demo_tasks") if isinstance(record, dict) else None
    if not seen:
        return []
    seen = set(seen)
    missing = [t for t in protocol.training_tasks if t not in seen]
    if missing:
        log.warning("policy %r was trained on demonstrations of %d of protocol %r's %d training tasks; "
                    "none of %s", policy.spec, len(protocol.training_tasks) - len(missing), protocol.name,
                    len(protocol.training_tasks), ", ".join(missing))
    return missing


def default_run_dir(protocol: Protocol, spec: str) -> Path:
    return Path("results") / "runs" / protocol.name / policy_slug(spec)


def run(protocol: str | Protocol, policy: str | Policy, run_dir: str | Path | None = None, num_envs: int = 2,
        backend: str = "local", vector: str = "async", videos_per_cell: int = 2, video_fps: int = 20,
        retry_errors: bool = False, progress: bool = True, splits: Sequence[str] | None = None,
        image_ablation: str | None = None, render_on_demand: bool = True,
        inference: dict | None = None) -> pd.DataFrame:
    """Validate everything (protocol, policy spec, backend), then roll out; returns the run's rows.

    ``splits`` runs only those splits' cells (a partial run: the leaderboard shows it apart, unranked).
    ``image_ablation="constant"`` shows the policy a constant grey image instead of its camera frames.
    ``render_on_demand=False`` renders every step's frames, read or not (the rows are the same).
    ``inference={"feature_steps": 3}`` runs a checkpoint with other inference settings (rows get the spec
    ``<spec>#feature_steps=3``; :func:`eval.policies.with_inference`)."""
    check_backend(backend)
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    episodes = None
    if splits:
        names = list(dict.fromkeys(e.name for e in proto.splits))
        unknown = [s for s in splits if s not in names]
        if unknown:
            raise RunError(f"splits {unknown} are not in protocol {proto.name}; valid: {', '.join(names)}")
        episodes = [ep for ep in proto.episodes() if ep.split in splits]
    pol = policy if isinstance(policy, Policy) else load_policy_spec(policy)
    if not pol.spec:
        raise RunError(f"policy object {type(pol).__name__} has no spec string; set .spec")
    if inference:
        if backend == "ray":  # Ray workers rebuild the policy from its spec, which names no settings
            raise RunError("inference settings are not supported with backend=ray yet; run them locally")
        pol = with_inference(pol, dict(inference))
    check_observation_fit(proto, pol)
    untrained_tasks(proto, pol)
    if image_ablation:
        if backend == "ray":  # Ray workers rebuild the policy from its spec, which names no ablation
            raise RunError("image_ablation is not supported with backend=ray yet; run it locally")
        pol = ImageAblation(pol, image_ablation)
    run_dir = Path(run_dir) if run_dir else default_run_dir(proto, pol.spec)
    kwargs = dict(num_envs=num_envs, vector=vector, videos_per_cell=videos_per_cell, video_fps=video_fps,
                  retry_errors=retry_errors, progress=progress, render_on_demand=render_on_demand)
    if episodes is not None:
        if backend == "ray":
            raise RunError("splits= is not supported with backend=ray yet; run the subset locally")
        kwargs["episodes"] = episodes
    if backend == "ray":
        from eval.ray_backend import run_ray

        return run_ray(proto, pol, run_dir, **kwargs)
    return Runner(proto, pol, run_dir, **kwargs).run()
