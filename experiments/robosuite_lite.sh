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
if [ ! -f $data/manifest.json ]; then
  vp-data --suite robosuite --tasks Lift Stack --episodes 25 --out $data --cameras agentview --max-steps 250
fi
case $method in
  bc) recipe=(steps=2000 batch_size=64 save_every=250 policy.config.camera=agentview) ;;
  diffusion) recipe=(steps=3000 batch_size=32 save_every=250 policy.config.camera=agentview) ;;
  video_policy) recipe=(save_every=100 policy.config.camera=agentview
                        "policy.config.stage_steps={vae: 500, video: 1200, action: 800}") ;;
  *) echo "unknown method '$method'; known: bc, diffusion, video_policy" >&2; exit 2 ;;
esac
vp-train policy=$method "data=[$data]" threads=1 out_dir=runs/train/rs-$method "${recipe[@]}"
vp-eval policy=runs/train/rs-$method/checkpoints/last protocol=robosuite-lite \
  run_dir=results/runs/robosuite-lite/$method ${splits:+"splits=$splits"}
vp-leaderboard
