"""Evaluation protocols: frozen, versioned lists of episodes that every policy is run through identically.

A protocol is a YAML file (``eval/protocols/<name>.yaml``) naming a suite, tasks, splits (optionally with a
shift level), episodes per (task, split), the episode length and the observation the policy sees:

>>> from eval.protocol import load_protocol
>>> p = load_protocol("metaworld-lite")          # or a path to any protocol YAML file
>>> p.name, p.version, len(p.episodes())
('metaworld-lite', 1, 580)
>>> p.episodes()[0]
EpisodeSpec(task='reach-v3', split='train', level=1, index=0)

Which (task, split) pairs run: the ``new_task`` split (any split whose file marks it ``tasks: held_out``)
runs only on the held-out tasks of the protocol, and every other split only on the tasks that are not held
out. The held-out tasks are the protocol's ``held_out_tasks`` field, or, without it, the suite's default
(the split file's ``held_out_tasks``: Meta-World's ML10 test tasks). So a protocol lists training tasks and
held-out tasks together and each gets the splits that mean something for it.

Every result row carries :attr:`Protocol.sha256`, the hash of the file's *parsed* content (canonical JSON:
sorted keys, no whitespace), so reformatting or editing comments keeps the hash, while any change to what
runs changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

REQUIRED = ("name", "version", "description", "suite", "tasks", "splits", "episodes", "max_steps",
            "cameras", "image_size")
OPTIONAL = {"terminate_on_success": True, "state": "proprio", "held_out_tasks": None}
STATES = ("proprio", "full")
# Sizes per suite (action, the state modes with one size for every task, the privileged state) come from
# vp_envs.suite_spec: the evaluation vector batches all of a protocol's tasks in one observation/action space.


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, order=True)
class EpisodeSpec:
    """One episode of a protocol. ``(task, split, level, index)`` is its key in results (and for resume)."""

    task: str
    split: str
    level: int
    index: int

    @property
    def cell(self) -> tuple[str, str, int]:
        return (self.task, self.split, self.level)


@dataclass(frozen=True)
class SplitEntry:
    """A split of the protocol at one level (``level=None`` in the file means the split's default)."""

    name: str
    level: int


@dataclass(frozen=True)
class Protocol:
    """A validated protocol. Build it with :func:`load_protocol`."""

    name: str
    version: int
    description: str
    suite: str
    tasks: tuple[str, ...]
    splits: tuple[SplitEntry, ...]
    episodes_per_cell: int
    max_steps: int
    cameras: tuple[str, ...]
    image_size: tuple[int, int]  # (height, width)
    terminate_on_success: bool
    state: str
    source: str
    sha256: str
    held_out: tuple[str, ...] = ()
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``vp_envs.make`` / ``gym.make`` shared by every episode."""
        return dict(cameras=self.cameras, height=self.image_size[0], width=self.image_size[1],
                    state=self.state, max_episode_steps=self.max_steps,
                    terminate_on_success=self.terminate_on_success)

    def cells(self) -> list[tuple[str, str, int]]:
        """Every (task, split, level) that runs, in protocol order (task-major)."""
        from vp_envs import load_splits

        suite = load_splits(self.suite)
        out = []
        for task in self.tasks:
            for entry in self.splits:
                held_only = suite.split(entry.name).tasks is not None
                if held_only == (task in self.held_out):
                    out.append((task, entry.name, entry.level))
        return out

    @property
    def training_tasks(self) -> tuple[str, ...]:
        """The tasks whose demonstrations a policy may train on (every task that is not held out)."""
        return tuple(t for t in self.tasks if t not in self.held_out)

    def episodes(self) -> list[EpisodeSpec]:
        """Every episode, cell by cell, so consecutive episodes reuse the same environment."""
        return [EpisodeSpec(t, s, lvl, i) for t, s, lvl in self.cells() for i in range(self.episodes_per_cell)]


def protocol_dir() -> Path:
    return Path(str(resources.files("eval") / "protocols"))


def list_protocols() -> list[str]:
    """Names of the protocols shipped in ``eval/protocols``."""
    return sorted(p.stem for p in protocol_dir().glob("*.yaml"))


def canonical_sha256(raw: dict[str, Any]) -> str:
    """sha256 of the canonical JSON form of a parsed protocol (key order and comments do not matter)."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_protocol_path(name_or_path: str | Path) -> Path:
    """A shipped protocol's name, or a path to a YAML file; anything else is refused with the valid names."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or path.is_file() or "/" in text:
        if not path.is_file():
            raise ProtocolError(f"protocol file {text!r} does not exist; shipped protocols: "
                                f"{', '.join(list_protocols())}")
        return path
    shipped = protocol_dir() / f"{text}.yaml"
    if not shipped.is_file():
        raise ProtocolError(f"unknown protocol {text!r}; known: {', '.join(list_protocols())} "
                            f"(or give a path to a protocol .yaml file)")
    return shipped


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load and validate a protocol by shipped name (``metaworld-lite``) or by path."""
    path = resolve_protocol_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProtocolError(f"protocol file {path}: not valid YAML: {exc}") from exc
    return parse_protocol(raw, str(path))


def _bad(source: str, field_name: str, message: str) -> ProtocolError:
    return ProtocolError(f"protocol file {source}: field {field_name!r}: {message}")


def _positive_int(raw: dict, key: str, source: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(source, key, f"must be a positive integer; got {value!r}")
    return value


def parse_protocol(raw: Any, source: str = "<memory>") -> Protocol:
    """Validate a parsed protocol dict. Every error names ``source``, the field, the bad value and the
    valid ones, and is raised before any environment is built."""
    import vp_envs
    from vp_envs import load_splits
    from vp_envs.splits import SUITES

    if not isinstance(raw, dict):
        raise ProtocolError(f"protocol file {source}: must be a mapping of fields; got {type(raw).__name__}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ProtocolError(f"protocol file {source}: missing field(s) {', '.join(map(repr, missing))}; "
                            f"required: {', '.join(REQUIRED)}")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:  # a typo ("episode:") must not silently fall back to a default
        raise ProtocolError(f"protocol file {source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(REQUIRED + tuple(OPTIONAL))}")

    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise _bad(source, "name", f"must be a non-empty string; got {name!r}")
    version = _positive_int(raw, "version", source)
    suite = raw["suite"]
    if suite not in SUITES:
        raise _bad(source, "suite", f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    splits_spec = load_splits(suite)

    known_tasks = vp_envs.list_tasks(suite)
    tasks = raw["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise _bad(source, "tasks", f"must be a non-empty list of task names; got {tasks!r}")
    for task in tasks:
        if task not in known_tasks:
            raise _bad(source, "tasks", f"unknown {suite} task {task!r}; known: {', '.join(known_tasks)}")
    if len(set(tasks)) != len(tasks):
        raise _bad(source, "tasks", f"lists a task twice: {tasks!r}")

    entries = raw["splits"]
    if not isinstance(entries, list) or not entries:
        raise _bad(source, "splits", f"must be a non-empty list of split names or {{name, level}}; "
                                     f"got {entries!r}")
    splits: list[SplitEntry] = []
    for entry in entries:
        if isinstance(entry, str):
            split_name, level = entry, None
        elif isinstance(entry, dict) and set(entry) <= {"name", "level"} and "name" in entry:
            split_name, level = entry["name"], entry.get("level")
        else:
            raise _bad(source, "splits", f"each entry is a split name or {{name: ..., level: ...}}; "
                                         f"got {entry!r}")
        if split_name not in splits_spec.splits:
            raise _bad(source, "splits", f"unknown split {split_name!r} for suite {suite!r}; "
                                         f"known: {', '.join(splits_spec.splits)}")
        split = splits_spec.split(split_name)
        resolved = split.default_level if level is None else level
        if isinstance(resolved, bool) or not isinstance(resolved, int) or not 1 <= resolved <= split.num_levels:
            raise _bad(source, "splits", f"split {split_name!r} has levels 1..{split.num_levels}; "
                                         f"got level {level!r}")
        splits.append(SplitEntry(split_name, resolved))
    if len(set(splits)) != len(splits):
        raise _bad(source, "splits", "lists the same split at the same level twice")

    held_raw = raw.get("held_out_tasks", OPTIONAL["held_out_tasks"])
    if held_raw is None:
        held = set(splits_spec.held_out_tasks)
    else:
        if not isinstance(held_raw, list) or not all(isinstance(t, str) for t in held_raw):
            raise _bad(source, "held_out_tasks", f"must be a list of task names; got {held_raw!r}")
        stray = [t for t in held_raw if t not in tasks]
        if stray:
            raise _bad(source, "held_out_tasks", f"lists task(s) the protocol does not: {', '.join(stray)}; "
                                                 f"its tasks: {', '.join(tasks)}")
        held = set(held_raw)
    held_only = {s.name for s in splits if splits_spec.split(s.name).tasks is not None}
    if held_only and not held & set(tasks):
        raise _bad(source, "tasks", f"split(s) {', '.join(sorted(held_only))} run only on held-out tasks "
                                    f"({', '.join(sorted(held))}) and none is listed")
    if held & set(tasks) and not held_only:
        raise _bad(source, "splits", f"held-out task(s) {', '.join(sorted(held & set(tasks)))} run only under "
                                     f"a held-out split (new_task) and none is listed")

    episodes = _positive_int(raw, "episodes", source)
    max_steps = _positive_int(raw, "max_steps", source)
    cameras = raw["cameras"]
    if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras):
        raise _bad(source, "cameras", f"must be a list of camera names (empty for state only); got {cameras!r}")
    size = raw["image_size"]
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise _bad(source, "image_size", f"must be a positive int or [height, width]; got {raw['image_size']!r}")
    terminate = raw.get("terminate_on_success", OPTIONAL["terminate_on_success"])
    if not isinstance(terminate, bool):
        raise _bad(source, "terminate_on_success", f"must be true or false; got {terminate!r}")
    state = raw.get("state", OPTIONAL["state"])
    if state not in STATES:
        raise _bad(source, "state", f"unknown state mode {state!r}; known: {', '.join(STATES)}")
    shared = vp_envs.suite_spec(suite).state_dims
    if state not in shared:
        raise _bad(source, "state", f"state {state!r} differs in size between {suite} tasks, so one protocol "
                                    f"cannot batch them; use: " + ", ".join(shared))
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise _bad(source, "description", "must say in words what the protocol measures")

    return Protocol(
        name=name, version=version, description=" ".join(description.split()), suite=suite,
        tasks=tuple(tasks), splits=tuple(splits), episodes_per_cell=episodes, max_steps=max_steps,
        cameras=tuple(cameras), image_size=(size[0], size[1]), terminate_on_success=terminate, state=state,
        source=source, sha256=canonical_sha256(raw), raw=raw,
        held_out=tuple(t for t in tasks if t in held),
    )
