#!/usr/bin/env bash
# metaworld-lite-v2: everything behind one method's rows, from nothing. Every step resumes: rerun the same
# line after an interruption.
#
#   experiments/metaworld_lite_v2.sh references      # observability tables, expert and random rows
#   experiments/metaworld_lite_v2.sh bc-state         # the privileged-state ceiling: train, curve, evaluate
#   experiments/metaworld_lite_v2.sh bc               # BC: train, curve, evaluate, constant-image ablation, offline image use
#   experiments/metaworld_lite_v2.sh dp "[test]"      # Diffusion Policy, a partial run (test only)
#
# A recipe is vp_agent/conf/recipe/<method>-lite-v2.yaml; results land in results/runs/metaworld-lite-v2/.
set -euo pipefail
method=$1
splits=${2:-}
protocol=metaworld-lite-v2
tasks=(button-press-topdown-v3 button-press-v3 coffee-button-v3 door-open-v3 drawer-open-v3 window-open-v3
       plate-slide-v3 handle-press-v3)
data=data/$protocol-train
val=data/$protocol-val
out=results/runs/$protocol
[ -f $data/manifest.json ] || vp-data --tasks "${tasks[@]}" --episodes 25 --cameras corner4 --size 96 --out $data
[ -f $val/manifest.json ] || vp-data --tasks "${tasks[@]}" --episodes 5 --split test --cameras corner4 --size 96 --out $val
if [ "$method" = references ]; then
  for p in metaworld-lite metaworld-lite-v2 metaworld-full robosuite-lite; do
    python -m vp_envs.observability --protocol $p --out results/observability/$p.csv || true  # exit 1 = a task fails
  done
  vp-eval policy=expert protocol=$protocol run_dir=$out/expert
  vp-eval policy=random protocol=$protocol run_dir=$out/random videos_per_cell=1
else
  train=runs/train/$method-lite-v2
  vp-train +recipe=$method-lite-v2 "data=[$data]" threads=1 out_dir=$train
  python -m eval.curve $train --protocol $protocol --episodes 5 --out results/curves/$method-lite-v2
  vp-eval policy=$train/checkpoints/last protocol=$protocol run_dir=$out/$method ${splits:+"splits=$splits"}
  if [ "$method" != bc-state ]; then
    vp-eval policy=$train/checkpoints/last protocol=$protocol run_dir=$out/$method-constant-image \
      image_ablation=constant "splits=[test]"
    python -m vp_agent.offline $train/checkpoints/last $val --windows 48 --image-use \
      --out results/offline/$method-lite-v2.json
  fi
fi
vp-leaderboard --readme README.md --readme docs/results.md
