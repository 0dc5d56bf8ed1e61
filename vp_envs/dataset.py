"""The on-disk dataset format for demonstrations and action-free video, with a writer and a reader.

A dataset is a directory::

    <dataset>/manifest.json          what made it: generator version, split file version, arguments,
                                     per task: episodes tried, kept, expert failures; while vp-data
                                     records, ``pending``: its tasks not written yet (readers refuse)
    <dataset>/<task>.hdf5            one HDF5 file per task (readable with plain h5py)

Each HDF5 file::

    attrs:  format="vp-bench-dataset", format_version, suite, task, instruction, split, level,
            cameras (JSON list), has_actions, state_mode
    data/                                     attrs: num_episodes, total_steps
    data/ep_000000/                           attrs: episode_index, seed, success, num_steps
    data/ep_000000/obs/<camera>   (T+1, H, W, 3) uint8, gzip-compressed, one chunk per frame
    data/ep_000000/obs/state      (T+1, D) float32
    data/ep_000000/privileged_state (T+1, S) float64   simulator state (for analysis, not for policies)
    data/ep_000000/actions        (T, A) float32        absent in action-free datasets
    data/ep_000000/rewards        (T,) float32
    data/ep_000000/successes      (T,) bool             info["success"] after each action

Observations hold one more step than actions: ``obs[t]`` is seen before ``actions[t]``, and ``obs[T]`` is
the frame after the last action (so a video model sees the whole episode). The layout follows robomimic's
``data/demo_i/obs`` convention, with the final observation kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

FORMAT = "vp-bench-dataset"
FORMAT_VERSION = 1
COMPRESSION = dict(compression="gzip", compression_opts=1)  # level 1: most of the size win, fast to decode


class DatasetError(ValueError):
    """A dataset file or directory that cannot be read; the message names the path and the reason."""


@dataclass
class Episode:
    """One recorded episode, as written to and read from disk."""

    frames: dict[str, np.ndarray]            # camera -> (T+1, H, W, 3) uint8
    state: np.ndarray                        # (T+1, D) float32
    privileged_state: np.ndarray             # (T+1, S) float64
    actions: np.ndarray | None               # (T, A) float32, None when action-free
    rewards: np.ndarray                      # (T,)
    successes: np.ndarray                    # (T,) bool
    seed: int
    episode_index: int

    @property
    def num_steps(self) -> int:
        return len(self.rewards)

    @property
    def success(self) -> bool:
        return bool(self.successes.any())


def write_task_file(path: str | Path, episodes: list[Episode], *, attrs: dict[str, Any],
                    drop_actions: bool = False) -> None:
    """Write one task's episodes to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["has_actions"] = not drop_actions
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
        data = f.create_group("data")
        for i, ep in enumerate(episodes):
            g = data.create_group(f"ep_{i:06d}")
            g.attrs.update(episode_index=ep.episode_index, seed=ep.seed, success=ep.success,
                           num_steps=ep.num_steps)
            obs = g.create_group("obs")
            for cam, frames in ep.frames.items():
                obs.create_dataset(cam, data=frames, chunks=(1, *frames.shape[1:]), **COMPRESSION)
            obs.create_dataset("state", data=ep.state.astype(np.float32))
            g.create_dataset("privileged_state", data=ep.privileged_state)
            if not drop_actions:
                g.create_dataset("actions", data=ep.actions.astype(np.float32))
            g.create_dataset("rewards", data=ep.rewards.astype(np.float32))
            g.create_dataset("successes", data=ep.successes.astype(bool))
        data.attrs["num_episodes"] = len(episodes)
        data.attrs["total_steps"] = int(sum(ep.num_steps for ep in episodes))
        f.flush()
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class TaskFile:
    """Read access to one task's HDF5 file. Frames are decoded lazily, one chunk per frame."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._f = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot open dataset file {self.path}: {exc}") from exc
        attrs = dict(self._f.attrs)
        if attrs.get("format") != FORMAT:
            raise DatasetError(f"{self.path} is not a {FORMAT} file (format attribute: {attrs.get('format')!r})")
        if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
            raise DatasetError(f"{self.path} has format_version {attrs['format_version']}, newer than this "
                               f"reader's {FORMAT_VERSION}; upgrade vp-bench")
        if "data" not in self._f:
            raise DatasetError(f"{self.path} has no 'data' group: the file is truncated or corrupt")
        self.attrs = {k: (json.loads(v) if k == "cameras" else v) for k, v in attrs.items()}
        self.keys = sorted(self._f["data"].keys())

    def __len__(self) -> int:
        return len(self.keys)

    def episode(self, i: int) -> Episode:
        try:
            g = self._f["data"][self.keys[i]]
            obs = g["obs"]
            return Episode(
                frames={c: obs[c][()] for c in self.attrs["cameras"]},
                state=obs["state"][()],
                privileged_state=g["privileged_state"][()],
                actions=g["actions"][()] if "actions" in g else None,
                rewards=g["rewards"][()],
                successes=g["successes"][()],
                seed=int(g.attrs["seed"]),
                episode_index=int(g.attrs["episode_index"]),
            )
        except (KeyError, OSError) as exc:
            raise DatasetError(f"episode {i} of {self.path} is unreadable: {exc}") from exc

    def frames(self, i: int, camera: str, index) -> np.ndarray:
        """Frames ``index`` (an int, slice or sorted index list) of ``camera`` in episode ``i``."""
        return self._f["data"][self.keys[i]]["obs"][camera][index]

    def close(self) -> None:
        self._f.close()


def warn_if_pre_render_fix(root: Path, manifest: dict) -> bool:
    """Warn (once per call) when ``root`` holds Meta-World frames recorded before render version 2, whose
    images drew many objects and goal markers at their default place; returns whether it warned."""
    import logging

    import vp_envs

    suite = manifest.get("settings", {}).get("suite")
    if suite in vp_envs.RENDER_V1_DEFECT_SUITES and int(manifest.get("render_version", 1)) < 2:
        logging.getLogger("vp-data").warning(
            "%s was recorded before render version 2: its %s frames draw objects and goal markers that tasks "
            "place at reset at their default place, not where the episode put them; re-record it with vp-data",
            root, suite)
        return True
    return False


def open_dataset(root: str | Path) -> dict[str, TaskFile]:
    """Open every task file of a dataset directory: task -> :class:`TaskFile`."""
    root = Path(root)
    manifest = root / "manifest.json"
    if not manifest.exists():
        raise DatasetError(f"{root} is not a dataset directory: {manifest} is missing")
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{manifest} is not valid JSON: {exc}") from exc
    if info.get("pending"):
        raise DatasetError(f"{root} is incomplete: {', '.join(info['pending'])} not written yet (vp-data is still "
                           f"recording or was interrupted; rerun the same vp-data command to finish it)")
    warn_if_pre_render_fix(root, info)
    files = {}
    for task in info.get("tasks", {}):
        path = root / f"{task}.hdf5"
        if not path.exists():
            raise DatasetError(f"{path} is listed in {manifest} but missing")
        files[task] = TaskFile(path)
    return files


def iter_episodes(root: str | Path) -> Iterator[tuple[str, Episode]]:
    for task, tf in open_dataset(root).items():
        for i in range(len(tf)):
            yield task, tf.episode(i)
        tf.close()
