#!/usr/bin/env bash
# Sample efficiency (issue 7, experiments 1 and 5): train a method on the first N demonstrations of each task
# with several seeds, evaluate each checkpoint on the `test` split, rebuild the leaderboard.
#
#   experiments/sample_efficiency.sh bc "5:0 10:0 5:1 5:2"        # method, then budget:seed pairs, in order
#   experiments/sample_efficiency.sh diffusion "5:0"
#   experiments/sample_efficiency.sh video_policy "5:0"
#   PROTOCOL=robosuite-lite experiments/sample_efficiency.sh bc "5:0 10:0"   # default: metaworld-lite
#   PROTOCOL=metaworld-lite-v2 experiments/sample_efficiency.sh video_policy_pretrained "5:0"
#   PROTOCOL=metaworld-lite-v2 experiments/sample_efficiency.sh bc_state "1:0 5:0"   # the state ceiling per budget
#   PROTOCOL=robosuite-lite-v2 experiments/sample_efficiency.sh bc "5:0 10:0"   # the same recipes, agentview
#   PROTOCOL=metaworld-lite-v2 RECIPE=vp-ema-lite-v2 INIT_FROM=video_policy:video \
#     experiments/sample_efficiency.sh video_policy "1:0"   # start from run video_policy-1demos-seed0's video stage
#   PROTOCOL=metaworld-lite-v2 RECIPE=vp-pretrained-aeft-lite-v2 experiments/sample_efficiency.sh video_policy_pretrained "5:0"
#   PROTOCOL=robosuite-lite-v2 DATA=data/robosuite-lite-v2-train-100 THREADS=2 \
#     experiments/sample_efficiency.sh bc "100:0"   # 100 demos (record them first: docs/results.md); 2 threads
#
# THREADS (default 1) is vp-train's torch thread count: 1 when several jobs share the machine, its core count
# when one runs alone. It changes a run's bits, not its recipe (the leaderboard pools it with 1-thread runs).
#
# On metaworld-lite-v2 and robosuite-lite-v2 the recipes are the Hydra ones of their leaderboard rows
# (vp_agent/conf/recipe/*-lite-v2.yaml: bc, bc_state, dp_state, diffusion, video_policy, and
# video_policy_pretrained, which starts from the video model of experiments/pretrain_video.sh; robosuite reads
# agentview, as experiments/robosuite_lite_v2.sh); on the v1 protocols, experiments/recipes.sh. RECIPE=<name> (v2 only) trains a
# variant recipe of that method instead (vp_agent/conf/recipe/<name>.yaml); its runs are named after it
# (<name without -lite-v2>-<N>demos-seed<S>) and the leaderboard tells them apart by recipe hash.
# INIT_FROM=<run prefix>:<stage> (v2) starts each run from the stage checkpoint of the run with the same budget
# and seed, <run prefix>-<N>demos-seed<S>/checkpoints/<stage> (vp-train init_from): e.g. a head-only ablation
# on an existing video model.
# Every step resumes: rerunning the same line skips finished training and finished episodes. The recipe is
# the one of the full-data run of the same method (README, Results), so the 25-demo point of each line is
# that run (seed 0). Checkpoints: runs/train/se/<method>-<N>demos-seed<S> (metaworld-lite) or
# runs/train/se-<protocol>/... (others); episodes: results/runs/<protocol>/sample-efficiency/<method>-<N>demos-seed<S>.
set -euo pipefail
method=$1
pairs=$2
source "$(dirname "$0")/recipes.sh"
protocol=${PROTOCOL:-metaworld-lite}
v2=$([[ $protocol == *-v2 ]] && echo 1 || echo 0)  # the version-2 protocols train the Hydra recipes
[ $v2 = 1 ] || set_recipe "$method"
eval_opts=()
if [ -n "${RECIPE:-}" ] && [ $v2 = 0 ]; then
  echo "RECIPE=$RECIPE: recipe variants are Hydra recipes of the version-2 protocols; PROTOCOL is $protocol" >&2
  exit 2
fi
case $protocol in
  metaworld-lite) data=${DATA:-data/metaworld-lite-train}; train_dir=runs/train/se; camera=() ;;
  metaworld-lite-v2|robosuite-lite-v2)
    data=${DATA:-data/$protocol-train}; train_dir=runs/train/se-$protocol; camera=()
    case $method in
      bc) recipe=(+recipe=bc-lite-v2) ;;
      bc_state) recipe=(+recipe=bc-state-lite-v2) ;;  # the privileged-state ceiling at the same budget
      dp_state) recipe=(+recipe=dp-state-lite-v2) ;;
      diffusion) recipe=(+recipe=dp-lite-v2) ;;
      video_policy) recipe=(+recipe=vp-lite-v2) ;;
      video_policy_pretrained) recipe=(+recipe=vp-pretrained-lite-v2) ;;
      *) echo "unknown method '$method'; known: bc, bc_state, dp_state, diffusion, video_policy, video_policy_pretrained" >&2; exit 2 ;;
    esac
    # robosuite-lite-v2 (as experiments/robosuite_lite_v2.sh): the recipes read corner4, robosuite agentview
    if [ "$protocol" = robosuite-lite-v2 ] && [[ $method != *_state ]]; then
      set_camera "$([[ $method == video_policy* ]] && echo video_policy || echo "$method")" agentview
    fi
    if [ -n "${RECIPE:-}" ]; then
      if [ ! -f "vp_agent/conf/recipe/$RECIPE.yaml" ]; then
        echo "unknown RECIPE '$RECIPE'; known: $(cd vp_agent/conf/recipe && ls *.yaml | sed 's/.yaml$//' | tr '\n' ' ')" >&2
        exit 2
      fi
      recipe=(+recipe=$RECIPE)
    fi
    # Video Policy: 8 env slots share one forward (experiments/metaworld_lite_v2.sh)
    [[ $method == video_policy* ]] && eval_opts=(num_envs=8 vector=sync) || eval_opts=(num_envs=2 vector=sync) ;;
  # as in experiments/robosuite_lite.sh, which records these demonstrations
  robosuite-lite) data=${DATA:-data/robosuite-lite-train}; train_dir=runs/train/se-$protocol
                  set_camera "$method" agentview ;;
  *) echo "unknown PROTOCOL '$protocol'; known: metaworld-lite, metaworld-lite-v2, robosuite-lite, robosuite-lite-v2" >&2; exit 2 ;;
esac
if ! recorded $data; then
  echo "no finished dataset at $data: record it first (README, Results; experiments/robosuite_lite.sh for robosuite)" >&2
  exit 2
fi
for pair in $pairs; do
  n=${pair%%:*}
  seed=${pair##*:}
  name=$method-${n}demos-seed$seed
  [ -n "${RECIPE:-}" ] && name=${RECIPE%-lite-v2}-${n}demos-seed$seed
  echo "=== $name: train $(date -u +%H:%M:%S)"
  # the v2 recipes choose the policy themselves
  policy=(policy=$method); [ $v2 = 1 ] && policy=()
  init=()
  if [ -n "${INIT_FROM:-}" ]; then
    src=$train_dir/${INIT_FROM%%:*}-${n}demos-seed$seed/checkpoints/${INIT_FROM##*:}
    if [ $v2 = 0 ] || [ ! -f "$src/training_state.pt" ]; then
      echo "INIT_FROM=$INIT_FROM: no stage checkpoint at $src (v2 only; train that run first)" >&2
      exit 2
    fi
    init=(init_from=$src)
  fi
  vp-train ${policy[@]+"${policy[@]}"} "data=[$data]" episodes_per_task=$n seed=$seed threads=${THREADS:-1} \
    out_dir=$train_dir/$name "${recipe[@]}" ${camera[@]+"${camera[@]}"} ${init[@]+"${init[@]}"}
  if [ "$protocol" = metaworld-lite-v2 ] && [[ $method == video_policy* ]]; then  # the error split (minutes)
    python -m vp_agent.offline $train_dir/$name/checkpoints/last data/$protocol-val --windows 48 --real-future \
      --out results/offline/$name-lite-v2.json
  fi
  echo "=== $name: evaluate on test $(date -u +%H:%M:%S)"
  vp-eval policy=$train_dir/$name/checkpoints/last protocol=$protocol "splits=[test]" \
    run_dir=results/runs/$protocol/sample-efficiency/$name ${eval_opts[@]+"${eval_opts[@]}"}
done
vp-leaderboard --readme README.md --readme docs/results.md
