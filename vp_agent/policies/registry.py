"""Policy name -> class. A new policy adds its folder and one line here."""

from vp_agent.policies.bc.modeling_bc import BCPolicy
from vp_agent.policies.diffusion.modeling_diffusion import DiffusionPolicy
from vp_agent.policies.video_policy.modeling_video_policy import VideoPolicy

POLICIES = {cls.name: cls for cls in (BCPolicy, DiffusionPolicy, VideoPolicy)}
CONFIGS = {name: cls.config_class for name, cls in POLICIES.items()}
