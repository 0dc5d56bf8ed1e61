"""eval: the frozen evaluation protocol, the rollout runner and the leaderboard builder.

Not built yet: tracked in issue 4. Imports point one way: eval -> vp_agent -> vp_envs.
"""
