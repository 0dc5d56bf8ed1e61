#!/usr/bin/env bash
# robosuite-lite (issue 7, experiment 5): record the demonstrations, train a method on them with the same
# recipe as on metaworld-lite, evaluate it (all splits, or the ones given), rebuild the leaderboard.
#
#   experiments/robosuite_lite.sh bc                 # every split
#   experiments/robosuite_lite.sh bc "[test]"        # a partial run: test only
#
# Every step resumes: rerun the same line after an interruption.
set -euo pipefail
method=$1
splits=${2:-}
data=data/robosuite-lite-train
source "$(dirname "$0")/recipes.sh"
set_recipe "$method"
set_camera "$method" agentview
# the version-1 Stack expert, whose demos trained this protocol's rows (version 2 came with robosuite-lite-v2's
# retraining); vp-data skips a finished dataset in a second and refuses one recorded with another expert
vp-data --suite robosuite --tasks Lift Stack --episodes 25 --out $data --cameras agentview --max-steps 250 \
  --expert-version 1
vp-train policy=$method "data=[$data]" threads=1 out_dir=runs/train/rs-$method "${recipe[@]}" "${camera[@]}"
vp-eval policy=runs/train/rs-$method/checkpoints/last protocol=robosuite-lite \
  run_dir=results/runs/robosuite-lite/$method ${splits:+"splits=$splits"}
vp-leaderboard
