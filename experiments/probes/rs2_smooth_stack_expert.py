"""Probe: record robosuite Stack demos with a carry that has no height threshold. Since 2026-12-07 this is the
shipped Stack expert, version 2 (vp_envs/robosuite_experts.py): plain `vp-data` records the same demos (every
Stack episode's actions equal to this probe's), and `vp-data --expert-version 1` the earlier ones.

The shipped Stack expert (vp_envs/robosuite_experts.py) lifts straight up until cube A is 1.5 cm under its carry
height, then switches to moving over cube B: at that threshold the demo action jumps from (xy 0, z +0.3) to
(xy 0.7, z 0). BC on the privileged state (robosuite-lite-v2's ceiling) blurs the jump and stalls under it with
z about 0 (results/traces/rs2-bc-state-Stack.csv, episode 1: cube A held 6 cm over the table, 8 cm from B, for 20
steps, until the gripper command drifts open). This variant lifts and carries at once: from the grasp it heads
for the point over B at carry height, with the horizontal speed ramping up as A clears B's top, so the action
changes smoothly along the path; lowering, release and back-off are the shipped expert's. Then it runs vp-data:

    python experiments/probes/rs2_smooth_stack_expert.py --suite robosuite --tasks Lift Stack --episodes 25 \
        --cameras agentview --size 96 --max-steps 250 --out data/probe-rs2-smooth-stack

Train and evaluate with the plain commands (the policy is plain ``bc_state``; only its demos differ). Outcome:
results/probes/robosuite-lite-v2-stack-ceiling.json.
"""
import sys

import numpy as np

from vp_envs import robosuite_experts as rx

_shipped = rx._StackExpert.lifted


def lifted(self, s):
    if self.stage not in (3, 4):
        return _shipped(self, s)
    a, b = s.cubeA_pos, s.cubeB_pos
    offset = s.eef_pos - a
    carry_z = b[2] + self.CUBE_B_HALF + rx.CUBE_HALF + 0.04
    if self.stage == 3:  # one stage for lift and carry
        self.advance()
    if np.linalg.norm(a[:2] - b[:2]) < 0.006 or self.t_stage > 80:
        self.advance()  # to the shipped lowering stage
        return _shipped(self, s)
    clear = np.clip((a[2] - rx.CUBE_HALF - (b[2] + self.CUBE_B_HALF)) / 0.02, 0.0, 1.0)  # 0 low, 1 A above B's top
    xy = s.eef_pos[:2] + clear * (b[:2] + offset[:2] - s.eef_pos[:2])
    return self.move(s, np.r_[xy, carry_z + offset[2]], self.rot, rx.CLOSE, max_speed=0.7)


rx._StackExpert.lifted = lifted

if __name__ == "__main__":
    from vp_envs.datagen import main

    sys.exit(main())
