"""eval: the frozen evaluation protocol, the rollout runner, the leaderboard builder and the quickstart.

``vp-eval policy=<spec> protocol=<name>`` runs a policy through a protocol (``eval/protocols/*.yaml``) and
writes one row per episode; ``vp-leaderboard`` summarises every run under ``results/``. See
``eval/README.md``. Imports point one way: eval -> vp_agent -> vp_envs.
"""
