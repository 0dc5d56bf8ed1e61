"""Policy name -> class. A new policy adds its folder and one line here."""

from vp_agent.policies.bc.modeling_bc import BCPolicy
from vp_agent.policies.diffusion.modeling_diffusion import DiffusionPolicy
from vp_agent.policies.video_policy.configuration_video_policy import video_policy_gpu
from vp_agent.policies.video_policy.modeling_video_policy import VideoPolicy

POLICIES = {cls.name: cls for cls in (BCPolicy, DiffusionPolicy, VideoPolicy)}
CONFIGS = {name: cls.config_class for name, cls in POLICIES.items()}
# Named presets of a policy's config, selectable like a policy (``vp-train policy=video_policy_gpu``):
# preset -> (policy name, config factory).
PRESETS = {"video_policy_gpu": ("video_policy", video_policy_gpu)}
