"""Scripted experts: hand-written controllers that read the privileged simulator state.

``scripted_expert(env)`` returns a callable ``(obs, info) -> action`` that uses ``info["privileged_state"]``
only, so it works on one env or on one slot of a vectorised env alike. Experts exist to make
demonstrations and an upper-bound reference row; they are not policies under test.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

Expert = Callable[[Any, dict], np.ndarray]


def _metaworld_expert(task: str) -> Expert:
    from metaworld.policies import ENV_POLICY_MAP

    if task not in ENV_POLICY_MAP:
        raise ValueError(f"no scripted expert for Meta-World task {task!r}")
    policy = ENV_POLICY_MAP[task]()
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")

    def act(obs: Any, info: dict) -> np.ndarray:
        if "privileged_state" not in info:
            raise KeyError("the scripted expert needs info['privileged_state'] from a vp_envs env")
        action = policy.get_action(np.asarray(info["privileged_state"], dtype=np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return act


def scripted_expert(env, version: int | None = None) -> Expert:
    """The scripted expert for ``env`` (a vp_envs env, wrapped or not) as ``(obs, info) -> action``.

    ``version``: the expert's plan as of that version (None: the latest; see :func:`expert_versions`). Only
    experts whose plan changed have more than one; the others ignore it."""
    base = env.unwrapped
    suite = getattr(base, "suite", None)
    if suite == "metaworld":
        return _metaworld_expert(base.task)
    if suite == "robosuite":
        from vp_envs.robosuite_experts import robosuite_expert

        return robosuite_expert(base.task, version)
    raise ValueError(f"no scripted experts for {type(base).__name__}; is it a vp_envs env?")


def expert_versions(suite: str, tasks, version: int | None = None) -> dict[str, int]:
    """``{task: version}`` of the scripted experts ``tasks`` get (asked for ``version``, None: the latest), for
    the tasks whose expert is past version 1 only: ``{}`` means every expert as first shipped. ``vp-data``
    records it in the manifest's task entries and evaluation in the expert's checkpoint hash, so demos or rows
    of two versions of an expert never pass for one another. Today only robosuite's Stack has a version 2 (a smoother carry)."""
    if suite != "robosuite":
        return {}
    from vp_envs.robosuite_experts import resolve_version

    out = {str(t): resolve_version(str(t), version) for t in tasks}
    return {t: v for t, v in sorted(out.items()) if v != 1}
