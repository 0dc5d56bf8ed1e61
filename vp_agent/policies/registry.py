"""Policy name -> class. A new policy adds its folder and one line here.

The configs are plain dataclasses and import at once (``vp-train`` registers them with Hydra); a policy's
model code imports on first lookup in :data:`POLICIES`, so training or loading BC never pays for importing
diffusers (several seconds of every ``vp-train`` and ``vp-eval`` start-up, measured in
``tests/test_agent.py::test_bc_never_imports_diffusers``)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from vp_agent.policies.bc.configuration_bc import BCConfig
from vp_agent.policies.diffusion.configuration_diffusion import DiffusionConfig
from vp_agent.policies.video_policy.configuration_video_policy import VideoPolicyConfig, video_policy_gpu

# name -> (config class, "module:class" of the model code)
_POLICIES = {
    "bc": (BCConfig, "vp_agent.policies.bc.modeling_bc:BCPolicy"),
    "diffusion": (DiffusionConfig, "vp_agent.policies.diffusion.modeling_diffusion:DiffusionPolicy"),
    "video_policy": (VideoPolicyConfig, "vp_agent.policies.video_policy.modeling_video_policy:VideoPolicy"),
}


class _LazyPolicies(Mapping):
    """A read-only ``{name: policy class}`` whose classes import when first looked up."""

    def __getitem__(self, name: str):
        module, cls = _POLICIES[name][1].split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_POLICIES)

    def __len__(self) -> int:
        return len(_POLICIES)


POLICIES: Mapping = _LazyPolicies()
CONFIGS = {name: config for name, (config, _) in _POLICIES.items()}
# Named presets of a policy's config, selectable like a policy (``vp-train policy=video_policy_gpu``):
# preset -> (policy name, config factory).
def bc_state() -> BCConfig:
    """``bc_state``: BC on the simulator's full (privileged) state, no image: the learnability ceiling of a
    task and recipe. If it cannot solve a task from the demos, the recipe or the task is broken, not
    perception."""
    return BCConfig(use_image=False, state_source="privileged", crop=0)


def dp_state() -> DiffusionConfig:
    """``dp_state``: Diffusion Policy on the simulator's full (privileged) state, no image: the ceiling of a
    multimodal action model. Beside ``bc_state`` it tells a task that the demos cannot teach from one where
    regressing the average action fails: on robosuite Stack BC averages "still lifting" and "lowering onto B"
    at one height into a hover and drops the cube (docs/results.md)."""
    return DiffusionConfig(use_image=False, state_source="privileged", crop=0)


PRESETS = {"video_policy_gpu": ("video_policy", video_policy_gpu), "bc_state": ("bc", bc_state),
           "dp_state": ("diffusion", dp_state)}
