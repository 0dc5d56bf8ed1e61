#!/usr/bin/env bash
# metaworld-lite-v2: everything behind one method's rows, from nothing. Every step resumes: rerun the same
# line after an interruption.
#
#   experiments/metaworld_lite_v2.sh references      # observability tables, expert and random rows
#   experiments/metaworld_lite_v2.sh bc-state         # the privileged-state ceiling: train, curve, evaluate
#   experiments/metaworld_lite_v2.sh bc               # BC: train, curve, evaluate, constant-image ablation, offline image use
#   experiments/metaworld_lite_v2.sh dp "[test]"      # Diffusion Policy (12000 steps), a partial run (test only)
#   experiments/metaworld_lite_v2.sh bc "[test]" 1    # BC, training seed 1, test only
#   experiments/metaworld_lite_v2.sh vp               # Video Policy: train, offline error split, evaluate
#   experiments/metaworld_lite_v2.sh vp-head9k "[test]"  # the same with a 9000-step action head (reuses vp's video model)
#   experiments/metaworld_lite_v2.sh vp-pretrained "[test,new_task]"   # from the pretrained video model
#       (experiments/pretrain_video.sh first: action-free videos of the 38 Meta-World tasks outside the protocol)
#   experiments/metaworld_lite_v2.sh vp-pretrained-newtask "[test,new_task]"  # the same, its video stage also
#       fine-tuned on action-free videos of the new_task tasks (the reverses of training tasks)
#   experiments/metaworld_lite_v2.sh vp-pretrained-long-newtask "[test,new_task]"  # <recipe>-newtask: any
#       recipe with the new_task videos added (here the pretrained start with the from-scratch video schedule)
#   experiments/metaworld_lite_v2.sh vp-pretrained-long-joint "[test]"  # the joint-training ablation (no
#       stop-gradient) of vp-pretrained-long, from its video stage
#
# A recipe is vp_agent/conf/recipe/<method>-lite-v2.yaml; results land in results/runs/metaworld-lite-v2/.
set -euo pipefail
source "$(dirname "$0")/recipes.sh"  # recorded
method=$1
splits=${2:-}
seed=${3:-0}
sfx=$([ "$seed" = 0 ] || echo "-s$seed")  # seed S > 0: its own folders and files (-sS), beside seed 0's
protocol=metaworld-lite-v2
tasks=(button-press-topdown-v3 button-press-v3 coffee-button-v3 door-open-v3 drawer-open-v3 window-open-v3
       plate-slide-v3 handle-press-v3)
data=data/$protocol-train
val=data/$protocol-val
out=results/runs/$protocol
recorded $data || vp-data --tasks "${tasks[@]}" --episodes 25 --cameras corner4 --size 96 --out $data
recorded $val || vp-data --tasks "${tasks[@]}" --episodes 5 --split test --cameras corner4 --size 96 --out $val
if [ "$method" = references ]; then
  for p in metaworld-lite metaworld-lite-v2 metaworld-full robosuite-lite; do
    python -m vp_envs.observability --protocol $p --out results/observability/$p.csv || true  # exit 1 = a task fails
  done
  vp-eval policy=expert protocol=$protocol run_dir=$out/expert
  vp-eval policy=random protocol=$protocol run_dir=$out/random videos_per_cell=1
else
  # run folders as committed for the current recipes: BC (bf16) seed S in bc-bf16-sS, DP (12000 steps) in
  # dp-12k; the folders bc, bc-constant-image and dp hold the earlier fp32 BC and 4000-step DP recipes' runs.
  # A DP episode costs more, so its curve uses 3 episodes per task.
  train=runs/train/$method-lite-v2$sfx
  case $method in
    bc) run=$out/bc-bf16-s$seed ;;
    dp) run=$out/dp-12k$sfx ;;
    *) run=$out/$method$sfx ;;
  esac
  is_vp=$([[ $method == vp* ]] && echo 1 || echo 0)
  # a variant that differs from another run only after its video stage starts from that stage when it is there:
  # vp-head9k (a longer head) from vp's, vp-pretrained-long-joint (no stop-gradient) from vp-pretrained-long's
  # (the run of the same seed)
  case $method in
    vp-head9k) init_src=runs/train/vp-lite-v2$sfx/checkpoints/video ;;
    vp-pretrained-long-joint) init_src=runs/train/vp-pretrained-long-lite-v2$sfx/checkpoints/video ;;
    *) init_src="" ;;
  esac
  init=""
  [ -n "$init_src" ] && [ -f "$init_src/training_state.pt" ] && init="init_from=$init_src"
  recipe=$method train_data=$data
  if [[ $method == *-newtask ]]; then  # action-free videos of the held-out tasks in the video stage
    recipe=${method%-newtask} train_data=$data,data/$protocol-newtask-video
    mapfile -t held_out < <(python -c "from eval.protocol import load_protocol; print('\n'.join(load_protocol('$protocol').held_out))")
    recorded data/$protocol-newtask-video || vp-data --tasks "${held_out[@]}" \
      --episodes 25 --no-actions --cameras corner4 --size 96 --out data/$protocol-newtask-video
  fi
  vp-train +recipe=$recipe-lite-v2 "data=[$train_data]" threads=1 seed=$seed out_dir=$train $init
  if [ $is_vp = 1 ]; then  # the error split first (minutes): is it the video or the head?
    python -m vp_agent.offline $train/checkpoints/last $val --windows 48 --real-future --image-use \
      --grid results/offline/$method-lite-v2${sfx}_generated_vs_real.png --out results/offline/$method-lite-v2$sfx.json
  fi
  # learning curves; Video Policy's snapshots are of its action stage (vp-head9k keeps 6: its curve)
  # (not for vp and the vp-pretrained runs: their action stage is vp-lite-v2's; vp-head9k holds the head's curve)
  [ "$seed" = 0 ] && [ "$method" != vp ] && [[ $method != vp-pretrained* ]] && python -m eval.curve $train --protocol $protocol \
    --episodes "$([ "$method" = dp ] && echo 3 || echo 5)" --num-envs "$([ $is_vp = 1 ] && echo 8 || echo 1)" \
    --out results/curves/$method-lite-v2
  # Video Policy: 8 env slots share one forward (a slot's share of the chunk is 0.39x a chunk alone)
  vp-eval policy=$train/checkpoints/last protocol=$protocol run_dir=$run ${splits:+"splits=$splits"} \
    num_envs=$([ $is_vp = 1 ] && echo 8 || echo 2) vector=sync
  if [ "$method" != bc-state ] && [ $is_vp = 0 ] && [ "$seed" = 0 ]; then
    vp-eval policy=$train/checkpoints/last protocol=$protocol run_dir=$run-constant-image \
      image_ablation=constant "splits=[test]"
    python -m vp_agent.offline $train/checkpoints/last $val --windows 48 --image-use \
      --out results/offline/$method-lite-v2.json
  fi
fi
vp-leaderboard --readme README.md --readme docs/results.md
