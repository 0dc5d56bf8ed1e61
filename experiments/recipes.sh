# The training recipe of each method, shared by the sweeps in this folder: the one of its full-data
# leaderboard row (README, Results). Usage, after `source experiments/recipes.sh`:
#   set_recipe <method>            # fills the array `recipe`; an unknown method exits 2 with the known ones
#   set_camera <method> <camera>   # fills the array `camera`: the overrides that train on another camera
set_recipe() {
  case $1 in
    bc) recipe=(steps=2000 batch_size=64 save_every=250) ;;
    diffusion) recipe=(steps=3000 batch_size=32 save_every=250) ;;
    video_policy) recipe=(save_every=100 "policy.config.stage_steps={vae: 500, video: 1200, action: 800}") ;;
    *) echo "unknown method '$1'; known: bc, diffusion, video_policy" >&2; exit 2 ;;
  esac
}
set_camera() {
  camera=("policy.config.camera=$2")
  # Video Policy generates every camera in `cameras`, which must start with `camera`
  if [ "$1" = video_policy ]; then camera+=("policy.config.cameras=[$2]"); fi
}
# recorded <dataset dir>: true when vp-data finished it (a manifest without `pending` tasks); the sweeps rerun
# vp-data otherwise, which resumes an interrupted recording
recorded() { [ -f "$1/manifest.json" ] && ! grep -q '"pending"' "$1/manifest.json"; }
