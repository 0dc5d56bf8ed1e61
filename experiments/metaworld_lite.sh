#!/usr/bin/env bash
# metaworld-lite (render version 2): record the demonstrations and the held-out test-split demos, train a
# method with its leaderboard recipe, evaluate it (all splits, or the ones given), score it offline with the
# image-use check, rebuild the leaderboard and the README's generated blocks.
#
#   experiments/metaworld_lite.sh bc                  # every split -> results/runs/metaworld-lite/bc-render2
#   experiments/metaworld_lite.sh diffusion "[test]"  # a partial run: test only
#   EXTRA="policy.config.crop=0" NAME=bc-lite-nocrop experiments/metaworld_lite.sh bc "[test,texture]"
#
# Every step resumes: rerun the same line after an interruption.
set -euo pipefail
method=$1
splits=${2:-}
source "$(dirname "$0")/recipes.sh"
set_recipe "$method"
tasks=(reach-v3 push-v3 pick-place-v3 button-press-topdown-v3)
data=data/metaworld-lite-train
val=data/metaworld-lite-val
short=$(case $method in bc) echo bc ;; diffusion) echo dp ;; video_policy) echo vp ;; esac)
name=${NAME:-$short-lite}
run_name=${NAME:-$short}-render2
recorded $data || vp-data --tasks "${tasks[@]}" --episodes 25 --out $data
recorded $val || vp-data --tasks "${tasks[@]}" --episodes 5 --split test --out $val
# shellcheck disable=SC2086  # EXTRA holds zero or more overrides
vp-train policy=$method "data=[$data]" threads=1 out_dir=runs/train/$name "${recipe[@]}" ${EXTRA:-}
vp-eval policy=runs/train/$name/checkpoints/last protocol=metaworld-lite \
  run_dir=results/runs/metaworld-lite/$run_name ${splits:+"splits=$splits"}
python -m vp_agent.offline runs/train/$name/checkpoints/last $val --windows 48 --image-use \
  --out results/offline/$name-render2.json
vp-leaderboard --readme README.md --readme docs/results.md
