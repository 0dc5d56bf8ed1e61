"""vp_agent: policies (BC, Diffusion Policy, Video Policy) behind one interface, and their training.

>>> from vp_agent import load_policy
>>> policy = load_policy("runs/train/bc/checkpoints/last")
>>> action = policy.act(obs, info)          # one env, or a batch from a vector env

Imports point one way: eval -> vp_agent -> vp_envs. Importing this package does not import torch: the names
below load on first use, so the evaluation runner (and its Ray workers) can import the policy interface
(:mod:`vp_agent.policies.interface`) without it.
"""

from __future__ import annotations

import importlib

_LAZY = {"Policy": "vp_agent.policies.interface", "TorchPolicy": "vp_agent.policies.base",
         "CheckpointError": "vp_agent.policies.base", "load_policy": "vp_agent.policies.base"}
__all__ = ["Policy", "TorchPolicy", "load_policy", "make_policy", "CheckpointError"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vp_agent' has no attribute {name!r}")


def make_policy(name: str, config: dict, stats, state_dim: int, action_dim: int):
    """A new, untrained policy ``name`` (a :class:`TorchPolicy`) with config overrides ``config``."""
    from vp_agent.policies.registry import POLICIES

    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    try:
        cfg = cls.config_class(**config)
    except TypeError as exc:
        raise ValueError(f"bad config for policy {name!r}: {exc}") from exc
    return cls(cfg, stats, state_dim, action_dim)
