"""Probe (not a recipe): does robosuite-lite-v2's privileged-state ceiling time its release off the step counter?

Zeroes column 0 of robosuite's ``privileged_state`` (``step``, the steps since reset, which the scripted experts
read to restart their plans) in the training data and at inference, then runs ``vp-train`` or ``vp-eval``:

    python experiments/probes/rs2_ceiling_notime.py train +recipe=bc-state-lite-v2 "data=[data/robosuite-lite-v2-train]" ...
    python experiments/probes/rs2_ceiling_notime.py eval policy=... protocol=robosuite-lite-v2 "splits=[test]" ...

The checkpoint it writes only means something under this script (plain ``vp-eval`` would feed it the step), so
its episodes stay out of ``results/runs``; the outcome is in results/probes/robosuite-lite-v2-stack-ceiling.json.
"""
import sys
import numpy as np
import vp_agent.data as data
import vp_agent.policies.base as base

_init = data.DemoDataset.__init__
def init(self, *a, **k):
    _init(self, *a, **k)
    if k.get("state_source") == "privileged":
        for s in self.states:
            s[:, 0] = 0.0
        all_states = np.concatenate(self.states)
        self.stats["state"] = data.MinMax(all_states.min(0), all_states.max(0))
        print("probe: zeroed privileged column 0", file=sys.stderr)
data.DemoDataset.__init__ = init

_act = base.TorchPolicy.act
def act(self, obs, infos):
    if self.privileged:
        if isinstance(infos, dict):
            infos = dict(infos); ps = np.array(infos["privileged_state"], copy=True); ps[:, 0] = 0.0
            infos["privileged_state"] = ps
        else:
            infos = [dict(i, privileged_state=np.concatenate([[0.0], np.asarray(i["privileged_state"])[1:]])) for i in infos]
    return _act(self, obs, infos)
base.TorchPolicy.act = act

which = sys.argv.pop(1)
if which == "train":
    from vp_agent.train import main
else:
    from eval.cli import main
sys.exit(main())
