"""Policy name -> class. A new policy adds its folder and one line here."""

from vp_agent.policies.bc.modeling_bc import BCPolicy
from vp_agent.policies.diffusion.modeling_diffusion import DiffusionPolicy

POLICIES = {cls.name: cls for cls in (BCPolicy, DiffusionPolicy)}
CONFIGS = {name: cls.config_class for name, cls in POLICIES.items()}
