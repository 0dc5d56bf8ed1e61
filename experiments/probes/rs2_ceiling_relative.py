"""Probe (not a recipe): does robosuite-lite-v2's privileged-state ceiling stack more when handed relative positions?

Appends the hand-to-cube-A, hand-to-cube-B and cube-A-to-cube-B vectors (robosuite's own low-dim Stack
observation has them; ours holds absolute positions only) to ``privileged_state`` in the training data and at
inference, then runs ``vp-train`` or ``vp-eval`` (arguments as experiments/probes/rs2_ceiling_notime.py). On
Lift, whose state is zero-padded after the cube, the B vectors are padding arithmetic, the same in training and
evaluation. Outcome: results/probes/robosuite-lite-v2-stack-ceiling.json.
"""
import sys
import numpy as np
import vp_agent.data as data
import vp_agent.policies.base as base

def aug(x):
    x = np.asarray(x, np.float32)
    eef, a, b = x[..., 1:4], x[..., 10:13], x[..., 17:20]
    return np.concatenate([x, eef - a, eef - b, a - b], axis=-1).astype(np.float32)

_init = data.DemoDataset.__init__
def init(self, *a, **k):
    _init(self, *a, **k)
    if k.get("state_source") == "privileged":
        self.states = [aug(s) for s in self.states]
        all_states = np.concatenate(self.states)
        self.stats["state"] = data.MinMax(all_states.min(0), all_states.max(0))
        print("probe: relative features, state dim", all_states.shape[1], file=sys.stderr)
data.DemoDataset.__init__ = init

_act = base.TorchPolicy.act
def act(self, obs, infos):
    if self.privileged:
        if isinstance(infos, dict):
            infos = dict(infos); infos["privileged_state"] = aug(np.asarray(infos["privileged_state"]))
        else:
            infos = [dict(i, privileged_state=aug(i["privileged_state"])) for i in infos]
    return _act(self, obs, infos)
base.TorchPolicy.act = act

which = sys.argv.pop(1)
if which == "train":
    from vp_agent.train import main
else:
    from eval.cli import main
sys.exit(main())
