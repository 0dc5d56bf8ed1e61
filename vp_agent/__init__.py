"""vp_agent: policies (Video Policy, BC, Diffusion Policy) and their training.

Not built yet: the policy interface and baselines are tracked in issue 5, Video Policy in issue 6.
Imports point one way: eval -> vp_agent -> vp_envs.
"""
