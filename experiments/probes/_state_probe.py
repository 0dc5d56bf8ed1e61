"""Shared by the state probes of this folder: run ``vp-train`` or ``vp-eval`` with every privileged state a
policy reads (the training data and ``info["privileged_state"]`` at inference) passed through ``transform``.

    run(transform)   # from a probe script; its first argument is ``train`` or ``eval``, the rest go to the CLI

``transform`` maps a float array of shape (..., D) to (..., D'); the data's normalisation statistics are refit on
the transformed states. A checkpoint trained this way only means something under the same probe script.
"""
import sys

import numpy as np

import vp_agent.data as data
import vp_agent.policies.base as base


def run(transform) -> None:
    init, act = data.DemoDataset.__init__, base.TorchPolicy.act

    def patched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if kwargs.get("state_source") == "privileged":
            self.states = [transform(np.asarray(s, np.float32)) for s in self.states]
            states = np.concatenate(self.states)
            self.stats["state"] = data.MinMax(states.min(0), states.max(0))
            print(f"probe: transformed privileged state, dim {states.shape[1]}", file=sys.stderr)

    def patched_act(self, obs, infos):
        if self.privileged:
            if isinstance(infos, dict):
                infos = {**infos, "privileged_state": transform(np.asarray(infos["privileged_state"], np.float32))}
            else:
                infos = [{**i, "privileged_state": transform(np.asarray(i["privileged_state"], np.float32))}
                         for i in infos]
        return act(self, obs, infos)

    data.DemoDataset.__init__, base.TorchPolicy.act = patched_init, patched_act
    which = sys.argv.pop(1)
    if which == "train":
        from vp_agent.train import main
    elif which == "eval":
        from eval.cli import main
    else:
        sys.exit(f"{sys.argv[0]}: first argument must be 'train' or 'eval', not {which!r}")
    sys.exit(main())
