#!/usr/bin/env bash
# Video pretraining for metaworld-lite-v2 (method video_policy_pretrained): record action-free videos of every
# Meta-World task outside the protocol (its 8 training tasks and 4 new_task reverses), train Video Policy's
# autoencoder and video model on them (recipe vp-pretrain-metaworld, no action head), export the video model to
# runs/pretrained/metaworld-video, where recipe vp-pretrained-lite-v2 starts from it. Every step resumes.
#
#   experiments/pretrain_video.sh                 # then, e.g.:
#   PROTOCOL=metaworld-lite-v2 experiments/sample_efficiency.sh video_policy_pretrained "5:0 25:0"
set -euo pipefail
source "$(dirname "$0")/recipes.sh"  # recorded
out=runs/pretrained/metaworld-video
data=data/metaworld-pretrain-video
train=runs/train/vp-pretrain-metaworld
# every task of the protocol (training tasks and held-out reverses) stays out of the pretraining videos
mapfile -t tasks < <(python -c "
import vp_envs
from eval.protocol import load_protocol
skip = set(load_protocol('metaworld-lite-v2').tasks)
print('\n'.join(t for t in (e.split('-', 1)[1] for e in vp_envs.list_envs('metaworld')) if t not in skip))
")
recorded $data || vp-data --tasks "${tasks[@]}" --episodes 25 --no-actions --cameras corner4 --size 96 \
  --out $data
vp-train +recipe=vp-pretrain-metaworld "data=[$data]" threads=1 out_dir=$train
python -m vp_agent.export_video $train/checkpoints/video $out
