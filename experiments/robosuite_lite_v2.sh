#!/usr/bin/env bash
# robosuite-lite-v2: everything behind one method's rows, from nothing, with the recipes of metaworld-lite-v2
# (vp_agent/conf/recipe/<method>-lite-v2.yaml) read through robosuite's agentview camera. Every step resumes:
# rerun the same line after an interruption.
#
#   experiments/robosuite_lite_v2.sh references        # observability table, expert row, random row
#   experiments/robosuite_lite_v2.sh bc-state "[test]"  # the privileged-state ceiling: train, evaluate on test
#   experiments/robosuite_lite_v2.sh dp-state "[test]"  # the same ceiling from Diffusion Policy
#   experiments/robosuite_lite_v2.sh bc                 # BC: train, evaluate every split
#   experiments/robosuite_lite_v2.sh dp "[test]" 1      # Diffusion Policy, training seed 1, test only
#   experiments/robosuite_lite_v2.sh vp "[test]"        # Video Policy from scratch
#
# RANDOM_SPLITS="[test]" limits the random row to those splits (a random episode runs all 400 steps).
# Results land in results/runs/robosuite-lite-v2/<method>[-s<seed>]; checkpoints in runs/train/rs2-<method>[-s<seed>].
set -euo pipefail
source "$(dirname "$0")/recipes.sh"  # set_camera
method=$1
splits=${2:-}
seed=${3:-0}
sfx=$([ "$seed" = 0 ] || echo "-s$seed")
protocol=robosuite-lite-v2
out=results/runs/$protocol
data=data/$protocol-train
if [ "$method" != references ] && [ ! -f "vp_agent/conf/recipe/$method-lite-v2.yaml" ]; then
  echo "unknown method '$method'; known: references $(cd vp_agent/conf/recipe && ls *-lite-v2.yaml | sed 's/-lite-v2.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi
# the demonstrations: train-split episodes, whose seeds no evaluated split uses, from the latest experts (Stack:
# version 2, a carry without the lift -> carry jump). vp-data skips a finished dataset in a second, and refuses
# one recorded with another expert version (e.g. before 2026-12-07): delete it, and it records the new demos
vp-data --suite robosuite --tasks Lift Stack --episodes 25 --cameras agentview --size 96 --max-steps 250 --out $data
if [ "$method" = references ]; then
  python -m vp_envs.observability --protocol $protocol --out results/observability/$protocol.csv
  vp-eval policy=expert protocol=$protocol run_dir=$out/expert
  vp-eval policy=random protocol=$protocol run_dir=$out/random videos_per_cell=1 \
    ${RANDOM_SPLITS:+"splits=$RANDOM_SPLITS"}
else
  is_vp=$([[ $method == vp* ]] && echo 1 || echo 0)
  # the recipes read corner4; here agentview (the *-state ceilings read no camera)
  camera=(); [[ $method == *-state ]] || set_camera "$([ $is_vp = 1 ] && echo video_policy || echo "$method")" agentview
  train=runs/train/rs2-$method$sfx
  vp-train +recipe=$method-lite-v2 "data=[$data]" threads=1 seed=$seed out_dir=$train "${camera[@]}"
  vp-eval policy=$train/checkpoints/last protocol=$protocol run_dir=$out/$method$sfx ${splits:+"splits=$splits"} \
    num_envs=$([ $is_vp = 1 ] && echo 8 || echo 2) vector=sync
fi
vp-leaderboard --readme README.md --readme docs/results.md
