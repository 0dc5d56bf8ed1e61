"""Probe (not a recipe): does robosuite-lite-v2's privileged-state ceiling time its release off the step counter?

Zeroes column 0 of robosuite's ``privileged_state`` (``step``, the steps since reset, which the scripted experts
read to restart their plans) in the training data and at inference, then runs ``vp-train`` or ``vp-eval``:

    python experiments/probes/rs2_ceiling_notime.py train +recipe=bc-state-lite-v2 "data=[data/robosuite-lite-v2-train]" ...
    python experiments/probes/rs2_ceiling_notime.py eval policy=... protocol=robosuite-lite-v2 "splits=[test]" ...

The checkpoint it writes only means something under this script (plain ``vp-eval`` would feed it the step), so
its episodes stay out of ``results/runs``; the outcome is in results/probes/robosuite-lite-v2-stack-ceiling.json.
"""

from _state_probe import run


def no_step(x):
    x = x.copy()
    x[..., 0] = 0.0  # robosuite's privileged field `step`
    return x


if __name__ == "__main__":
    run(no_step)
