"""Policy name -> class. A new policy adds its folder and one line here."""

from vp_agent.policies.bc.configuration_bc import BCConfig
from vp_agent.policies.bc.modeling_bc import BCPolicy
from vp_agent.policies.diffusion.configuration_diffusion import DiffusionConfig
from vp_agent.policies.diffusion.modeling_diffusion import DiffusionPolicy
from vp_agent.policies.video_policy.configuration_video_policy import video_policy_gpu
from vp_agent.policies.video_policy.modeling_video_policy import VideoPolicy

POLICIES = {cls.name: cls for cls in (BCPolicy, DiffusionPolicy, VideoPolicy)}
CONFIGS = {name: cls.config_class for name, cls in POLICIES.items()}
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
