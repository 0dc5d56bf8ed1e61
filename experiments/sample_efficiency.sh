#!/usr/bin/env bash
# Sample efficiency (issue 7, experiments 1 and 5): train a method on the first N demonstrations of each task
# with several seeds, evaluate each checkpoint on the `test` split, rebuild the leaderboard.
#
#   experiments/sample_efficiency.sh bc "5:0 10:0 5:1 5:2"        # method, then budget:seed pairs, in order
#   experiments/sample_efficiency.sh diffusion "5:0"
#   experiments/sample_efficiency.sh video_policy "5:0"
#   PROTOCOL=robosuite-lite experiments/sample_efficiency.sh bc "5:0 10:0"   # default: metaworld-lite
#
# Every step resumes: rerunning the same line skips finished training and finished episodes. The recipe is
# the one of the full-data run of the same method (README, Results), so the 25-demo point of each line is
# that run (seed 0). Checkpoints: runs/train/se/<method>-<N>demos-seed<S> (metaworld-lite) or
# runs/train/se-<protocol>/... (others); episodes: results/runs/<protocol>/sample-efficiency/<method>-<N>demos-seed<S>.
set -euo pipefail
method=$1
pairs=$2
source "$(dirname "$0")/recipes.sh"
set_recipe "$method"
protocol=${PROTOCOL:-metaworld-lite}
case $protocol in
  metaworld-lite) data=${DATA:-data/metaworld-lite-train}; train_dir=runs/train/se; camera=() ;;
  # as in experiments/robosuite_lite.sh, which records these demonstrations
  robosuite-lite) data=${DATA:-data/robosuite-lite-train}; train_dir=runs/train/se-$protocol
                  set_camera "$method" agentview ;;
  *) echo "unknown PROTOCOL '$protocol'; known: metaworld-lite, robosuite-lite" >&2; exit 2 ;;
esac
if [ ! -f $data/manifest.json ]; then
  echo "no dataset at $data: record it first (README, Results; experiments/robosuite_lite.sh for robosuite)" >&2
  exit 2
fi
for pair in $pairs; do
  n=${pair%%:*}
  seed=${pair##*:}
  name=$method-${n}demos-seed$seed
  echo "=== $name: train $(date -u +%H:%M:%S)"
  vp-train policy=$method "data=[$data]" episodes_per_task=$n seed=$seed threads=1 \
    out_dir=$train_dir/$name "${recipe[@]}" ${camera[@]+"${camera[@]}"}
  echo "=== $name: evaluate on test $(date -u +%H:%M:%S)"
  vp-eval policy=$train_dir/$name/checkpoints/last protocol=$protocol "splits=[test]" \
    run_dir=results/runs/$protocol/sample-efficiency/$name
done
vp-leaderboard
