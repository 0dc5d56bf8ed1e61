"""vp_agent: policies (BC, Diffusion Policy; Video Policy next) behind one interface, and their training.

>>> from vp_agent import load_policy
>>> policy = load_policy("runs/train/bc/checkpoints/last")
>>> action = policy.act(obs, info)          # one env, or a batch from a vector env

Imports point one way: eval -> vp_agent -> vp_envs.
"""

from vp_agent.policies.base import CheckpointError, Policy, load_policy

__all__ = ["Policy", "load_policy", "make_policy", "CheckpointError"]


def make_policy(name: str, config: dict, stats, state_dim: int, action_dim: int) -> Policy:
    """A new, untrained policy ``name`` with config overrides ``config``."""
    from vp_agent.policies.registry import POLICIES

    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    try:
        cfg = cls.config_class(**config)
    except TypeError as exc:
        raise ValueError(f"bad config for policy {name!r}: {exc}") from exc
    return cls(cfg, stats, state_dim, action_dim)
