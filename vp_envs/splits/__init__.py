"""Distribution-shift splits, loaded from one versioned YAML file per suite.

A split is data (see ``metaworld.yaml`` beside this file): a *seed group* that maps
``(task, split, episode index)`` to a seed, an optional list of tasks it applies to, and factor settings,
optionally in graded *levels* so success can be plotted against the size of a shift.

>>> from vp_envs.splits import load_splits, episode_seed
>>> spec = load_splits("metaworld")
>>> spec.split("camera").factors(level=1)["camera_pose"]["yaw_deg"]
[-5, 5]
>>> episode_seed("metaworld", "reach-v3", "camera", 0) == episode_seed("metaworld", "reach-v3", "test", 0)
True
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml


SUITES = ("metaworld", "robosuite")


@dataclass(frozen=True)
class Split:
    """One named split of a suite.

    Attributes:
        name: split name (``train``, ``test``, ``camera``, ...).
        description: what the split changes and by how much, in words.
        seed_group: seeds are drawn from this group; shift splits share ``test``'s group so that their
            episode ``i`` starts from the same state as ``test``'s episode ``i``.
        tasks: for a split that runs on held-out tasks only (``new_task``), the suite's default held-out tasks;
            ``None`` for every other split. An env accepts any task under any split (``new_task`` is the
            ``test`` distribution); which tasks are held out of training is a protocol's choice
            (``held_out_tasks`` in ``eval/protocols/*.yaml``, defaulting to this list).
        levels: graded factor settings, weakest first; a split without levels has one implicit level.
        default_level: the level used when none is given (1-based).
        version: the split's own version (default 1), bumped when what the split draws changes; result rows
            record it (``split_version``) and ``vp-eval`` re-runs rows of an older version.
    """

    name: str
    description: str
    seed_group: str
    tasks: tuple[str, ...] | None = None
    levels: tuple[dict[str, Any], ...] = ()
    default_level: int = 1
    version: int = 1

    @property
    def num_levels(self) -> int:
        return max(1, len(self.levels))

    def factors(self, level: int | None = None) -> dict[str, dict[str, Any]]:
        """Factor settings at ``level`` (1-based; ``None`` means ``default_level``)."""
        level = self.default_level if level is None else level
        if not isinstance(level, int) or not 1 <= level <= self.num_levels:
            raise ValueError(
                f"split {self.name!r} has levels 1..{self.num_levels}; got level={level!r}"
            )
        if not self.levels:
            return {}
        return copy.deepcopy(self.levels[level - 1])

    @property
    def perceptual(self) -> bool:
        """True when every factor of every level only changes pixels."""
        from vp_envs.factors import FACTORS

        return all(FACTORS[f].perceptual for lvl in self.levels for f in lvl)


@dataclass(frozen=True)
class SuiteSplits:
    """Every split of one suite, as read from its YAML file."""

    suite: str
    version: int
    table_height: float
    held_out_tasks: tuple[str, ...]
    splits: dict[str, Split] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise ValueError(
                f"unknown split {name!r} for suite {self.suite!r}; known: {', '.join(self.splits)}"
            )
        return self.splits[name]



def _parse(raw: dict[str, Any], source: str) -> SuiteSplits:
    try:
        suite = raw["suite"]
        version = int(raw["version"])
        held_out = tuple(raw.get("held_out_tasks", {}).get("tasks", ()))
        from vp_envs.factors import FACTORS  # here, not at the top: it imports MuJoCo (see vp_envs/__init__)

        splits = {}
        for name, body in raw["splits"].items():
            tasks = body.get("tasks")
            if tasks == "held_out":
                tasks = held_out
            levels = tuple(body.get("levels", ()))
            for lvl in levels:
                for factor in lvl:
                    if factor not in FACTORS:
                        raise ValueError(
                            f"split {name!r} uses unknown factor {factor!r}; known: {', '.join(FACTORS)}"
                        )
            splits[name] = Split(
                name=name,
                description=" ".join(str(body.get("description", "")).split()),
                seed_group=body["seed_group"],
                tasks=tuple(tasks) if tasks is not None else None,
                levels=levels,
                default_level=int(body.get("default_level", 1)),
                version=int(body.get("version", 1)),
            )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed split file {source}: missing or bad field {exc}") from exc
    return SuiteSplits(suite, version, float(raw.get("table_height", 0.0)), held_out, splits)


@functools.cache
def load_splits(suite: str) -> SuiteSplits:
    """Load the split definitions shipped for ``suite``."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    path = resources.files("vp_envs.splits") / f"{suite}.yaml"
    return _parse(yaml.safe_load(path.read_text()), str(path))


def list_splits(suite: str = "metaworld") -> list[str]:
    """Names of the splits defined for ``suite``."""
    return list(load_splits(suite).splits)


def episode_seed(suite: str, task: str, split: str, index: int) -> int:
    """The seed of episode ``index`` of ``task`` under ``split``: the same on every machine and run."""
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"episode index must be a non-negative int; got {index!r}")
    group = load_splits(suite).split(split).seed_group
    digest = hashlib.sha256(f"{suite}/{task}/{group}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
