"""vp_agent: policy interface, training, save/load, resume after a kill, clear checkpoint errors."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vp_envs
from vp_agent import CheckpointError, load_policy, make_policy
from vp_agent.data import DemoDataset
from vp_agent.policies.base import finish_dir_swap
from vp_agent.text import make_text_encoder
from vp_agent.train import _batch
from vp_envs.datagen import generate

TINY = {
    "bc": dict(text_encoder="hashing", encoder_channels=[8, 16], feature_dim=32, hidden_dims=[64], crop=28),
    "diffusion": dict(text_encoder="hashing", encoder_channels=[8, 16], feature_dim=32, down_dims=[16, 32],
                      horizon=8, n_action_steps=4, crop=28, num_inference_steps=4),
}


def _fit(policy, batch, steps: int, lr: float = 1e-3) -> tuple[float, float]:
    """The loss on one fixed batch before and after ``steps`` Adam steps on it (the same noise and crops each
    time, so the batch is really fixed)."""
    opt = torch.optim.Adam(policy.parameters(), lr=lr)

    def loss():
        torch.manual_seed(2)
        return policy(batch)["loss"]

    before = loss().item()
    for _ in range(steps):
        opt.zero_grad()
        loss().backward()
        opt.step()
    return before, loss().item()


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("agent_demos")
    generate("metaworld", ["reach-v3", "button-press-topdown-v3"], "train", 2, out, size=32, progress=False)
    return out


def _dataset(demos, name):
    cfg = TINY[name]
    ds = DemoDataset([demos], n_obs=2 if name == "diffusion" else 1, horizon=cfg.get("horizon", 1))
    return ds


def _policy(demos, name):
    ds = _dataset(demos, name)
    torch.manual_seed(0)
    policy = make_policy(name, TINY[name], ds.stats, ds.state_dim, ds.action_dim)
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    return policy, ds


def test_bc_never_imports_diffusers(demos, tmp_path):
    """The registry imports a policy's model code on first lookup: ``vp-train`` and loading a BC checkpoint
    start without diffusers (4-10 s of every start-up here), and every policy name still maps to its class."""
    from vp_agent.policies.registry import CONFIGS, POLICIES

    policy, _ = _policy(demos, "bc")
    policy.save(tmp_path / "bc")
    code = ("import sys, vp_agent.train; from vp_agent import load_policy; "
            f"load_policy({str(tmp_path / 'bc')!r}); print(sorted(m for m in ('diffusers', 'vp_agent.policies."
            "diffusion.modeling_diffusion') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", out
    assert list(POLICIES) == list(CONFIGS) == ["bc", "diffusion", "video_policy"]
    for name in POLICIES:
        assert POLICIES[name].name == name and POLICIES[name].config_class is CONFIGS[name]
    with pytest.raises(KeyError):
        POLICIES["nope"]


def test_dataset_windows(demos):
    ds = DemoDataset([demos], n_obs=2, horizon=8)
    item = ds[0]  # the first step of an episode: the history repeats the first frame
    assert item["image"].shape == (2, 3, 32, 32) and item["image"].dtype == torch.uint8
    assert torch.equal(item["image"][0], item["image"][1])
    assert item["action"].shape == (8, 4) and item["action_is_pad"].shape == (8,)
    assert set(ds.instructions) == {"Reach the goal position with the gripper.", "Press the button from the top."}
    assert item["action"].abs().max() <= 1.0 + 1e-6


def test_episodes_per_task_keeps_the_first_demos_of_each_task(demos):
    full = DemoDataset([demos])
    one = DemoDataset([demos], episodes_per_task=1)
    assert len(full.frames) == 4 and len(one.frames) == 2  # 2 tasks x 2 demos -> 2 tasks x 1 demo
    assert sorted(one.text_ids) == [0, 1]
    assert np.array_equal(one.frames[0], full.frames[0]) and np.array_equal(one.frames[1], full.frames[2])
    with pytest.raises(ValueError, match="episodes_per_task must be >= 1"):
        DemoDataset([demos], episodes_per_task=0)


@pytest.mark.parametrize("name", ["bc", "diffusion"])
def test_training_steps_lower_the_loss_on_a_fixed_batch(demos, name):
    policy, ds = _policy(demos, name)
    torch.manual_seed(1)
    batch = _batch(ds, torch.arange(0, len(ds), max(1, len(ds) // 8))[:8], "cpu")
    before, after = _fit(policy, batch, 25, lr=3e-3)
    assert after < 0.7 * before


@pytest.mark.parametrize("name", ["bc", "diffusion"])
def test_save_load_gives_identical_actions(demos, name, tmp_path):
    policy, _ = _policy(demos, name)
    policy.eval()
    policy.save(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    env = vp_envs.make("vp/metaworld-reach-v3", width=32, height=32)
    obs, info = env.reset(options={"episode": 0})
    torch.manual_seed(5)
    a = policy.act(obs, info)
    torch.manual_seed(5)
    b = loaded.act(obs, info)
    np.testing.assert_array_equal(a, b)
    env.close()


def test_receding_horizon_and_batched_act(demos):
    policy, _ = _policy(demos, "diffusion")
    policy.eval()
    calls = []
    inner = policy.predict_action_chunk
    policy.predict_action_chunk = lambda batch: (calls.append(len(batch["state"])), inner(batch))[1]
    env = vp_envs.make("vp/metaworld-reach-v3", width=32, height=32)
    obs, info = env.reset(options={"episode": 0})
    for _ in range(9):  # 4 actions executed per chunk -> chunks at steps 0, 4, 8
        obs, *_, info = env.step(policy.act(obs, info))
    assert calls == [1, 1, 1]
    batch_obs = {"state": np.stack([obs["state"]] * 3), "pixels": {"corner2": np.stack([obs["pixels"]["corner2"]] * 3)}}
    policy.reset()
    actions = policy.act(batch_obs, {"instruction": np.array([info["instruction"]] * 3)})
    assert actions.shape == (3, 4) and calls[-1] == 3  # one batched call for three envs
    env.close()


def test_checkpoint_errors_name_path_and_reason(demos, tmp_path):
    policy, _ = _policy(demos, "bc")
    ckpt = tmp_path / "ckpt"
    policy.save(ckpt)
    with pytest.raises(CheckpointError, match="checkpoint directory .*nowhere does not exist"):
        load_policy(tmp_path / "nowhere")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="not a policy checkpoint: model.safetensors is missing"):
        load_policy(ckpt)
    policy.save(ckpt)
    meta = json.loads((ckpt / "config.json").read_text())
    meta["config"]["hidden_dims"] = [128]
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match the bc config"):
        load_policy(ckpt)
    policy.save(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match=f"{ckpt}/model.safetensors is unreadable"):
        load_policy(ckpt)
    policy.save(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(ckpt)
    with pytest.raises(ValueError, match="unknown policy .bcc.; known: bc, diffusion, video_policy"):
        make_policy("bcc", {}, None, 4, 4)


def _train_cmd(demos, out, steps):
    args = [f"{k}={v}".replace(" ", "") for k, v in TINY["bc"].items()]
    return [sys.executable, "-m", "vp_agent.train", "policy=bc", f"data=[{demos}]", f"steps={steps}",
            "batch_size=8", "save_every=5", "log_every=5", f"out_dir={out}", "threads=1",
            *[f"policy.config.{a}" for a in args]]


def test_resume_after_kill_continues_exactly(demos, tmp_path):
    """Kill a training run after its first checkpoint; the resumed run ends with the same weights as
    an uninterrupted one (batches and noise are seeded by step)."""
    env = {**os.environ, "VP_BENCH_CACHE": str(tmp_path / "cache")}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(demos, full, 20), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(demos, killed, 20), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = killed / "checkpoints" / "last" / "training_state.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finish_dir_swap(state.parent)  # the kill may land between the two renames of a later save (as vp-train does)
    saved_step = torch.load(state, weights_only=False)["step"]
    assert saved_step < 20, "the run finished before it could be killed; make it longer"
    subprocess.run(_train_cmd(demos, killed, 20), check=True, env=env, capture_output=True)
    a = load_file(str(full / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(killed / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    logged = [json.loads(line)["step"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert logged[-1] == 20


def test_a_kill_between_the_renames_of_a_checkpoint_swap_loses_nothing(demos, tmp_path):
    """``write_dir_atomically`` moves the old folder aside before it moves the new one in; a kill between the
    two renames leaves no ``last`` folder. The next reader finishes the swap and gets the newer checkpoint."""
    policy, _ = _policy(demos, "bc")
    last = tmp_path / "last"
    policy.save(last, extra={"trained_steps": 5})
    policy.save(last.with_name("last.tmp"), extra={"trained_steps": 10})  # the new one, fully written
    os.replace(last, last.with_name("last.old"))  # ... and the kill comes here
    assert not last.exists()
    loaded = load_policy(last)
    assert json.loads((last / "config.json").read_text())["trained_steps"] == 10
    assert not last.with_name("last.old").exists() and not last.with_name("last.tmp").exists()
    assert loaded.state_dim == policy.state_dim
    policy.save(last, extra={"trained_steps": 15})  # and the next save works as usual
    assert json.loads((last / "config.json").read_text())["trained_steps"] == 15


def test_minilm_text_encoder_from_package(tmp_path, monkeypatch):
    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path))
    enc = make_text_encoder("minilm")
    emb = enc.encode(["Pull the drawer open.", "Open the drawer by pulling it.", "Press the button from the top."])
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # paraphrases are closer than different tasks
    assert list((tmp_path / "text" / "minilm").glob("*.npy"))  # cached on disk
    with pytest.raises(ValueError, match="unknown text encoder 'clip'; known: minilm, hashing"):
        make_text_encoder("clip")


def test_a_sentence_embeds_to_the_same_bits_whatever_else_is_encoded_with_it(tmp_path, monkeypatch):
    """The embedding a run trains with must not depend on which other sentences were missing from the cache
    (batched, padded encoding changed the last bits, and a run's weights with them)."""
    from vp_agent.text import MiniLMEncoder

    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path))
    short = "Press the button from the top."
    alone = MiniLMEncoder().encode([short])[0]
    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path / "other"))  # an empty cache: computed again
    batched = MiniLMEncoder().encode(["Open the drawer by pulling its handle towards the robot, all the way out.",
                                      short])[1]
    assert np.array_equal(alone, batched)


def test_offline_image_use_check_tells_a_blind_policy_from_one_that_reads_the_image(demos):
    """``evaluate(..., image_use=True)``: noise in place of the image moves the actions of a policy that
    reads it; a policy whose image features are zeroed is not moved at all (to the last bit)."""
    from vp_agent.offline import evaluate

    policy, _ = _policy(demos, "bc")
    policy.eval()
    seeing = evaluate(policy, [str(demos)], windows=6, image_use=True)["image_use"]
    assert seeing["noise_image"] > 1e-4 and seeing["shuffled_state"] > 0
    for p in policy.encoder.parameters():
        torch.nn.init.zeros_(p)
    blind = evaluate(policy, [str(demos)], windows=6, image_use=True)["image_use"]
    assert blind["noise_image"] == 0.0


def test_lr_schedule_warms_up_then_decays_by_cosine():
    from vp_agent.train import lr_at

    assert lr_at(0, 100, 1.0) == lr_at(99, 100, 1.0) == 1.0
    assert lr_at(0, 100, 1.0, "cosine", warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, "cosine", warmup_steps=10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, "cosine", warmup_steps=10) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, "cosine", warmup_steps=10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'; known: constant, cosine"):
        lr_at(0, 10, 1.0, "linear")


def test_the_optimiser_is_fused_adamw_and_steps_as_the_per_tensor_loop():
    """vp-train's AdamW is torch's fused kernel where this torch has it for the device (CPU from 2.4), and it
    takes the same steps as the default per-tensor loop up to rounding."""
    from vp_agent.train import adamw

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    start = nets[0][0].weight.detach().clone()
    fused = adamw(nets[0].parameters(), 1e-2, 1e-4)
    loop = torch.optim.AdamW(nets[1].parameters(), lr=1e-2, weight_decay=1e-4)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert fused.defaults["fused"] is True
    x = torch.randn(32, 8)
    for _ in range(20):
        for net, opt in zip(nets, (fused, loop)):
            loss = net(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (nets[0][0].weight - start).abs().max() > 1e-2  # it trained: the comparison means something


def test_privileged_states_of_robosuite_tasks_are_padded_to_the_size_the_runner_gives(tmp_path):
    """Lift's privileged state is shorter than Stack's; the dataset pads both to the suite's one size, as
    eval/slot_env.py pads info["privileged_state"], so bc_state trains on robosuite and acts at evaluation."""
    from vp_envs import suite_spec
    from vp_envs.datagen import generate
    from vp_envs.dataset import open_dataset

    generate("robosuite", ["Lift", "Stack"], "train", 1, tmp_path, cameras=(), max_steps=120, progress=False)
    ds = DemoDataset([tmp_path], state_source="privileged", use_image=False)
    dim = suite_spec("robosuite").privileged_dim
    assert ds.state_dim == dim and {s.shape[1] for s in ds.states} == {dim}
    files = open_dataset(tmp_path)
    raw = [files[t].episode(0).privileged_state for t in ("Lift", "Stack")]
    assert raw[0].shape[1] < raw[1].shape[1] <= dim  # the sizes differ: without the padding they cannot stack
    for x, padded in zip(raw, ds.states):
        n = x.shape[1]
        assert np.allclose(padded[:, :n], x) and not padded[:, n:].any()
    # the runner pads one step's state by the same rule (SuiteSpec.pad_privileged), and refuses a longer one
    np.testing.assert_array_equal(suite_spec("robosuite").pad_privileged(raw[1][0]).astype(np.float32), ds.states[1][0])
    with pytest.raises(ValueError, match="exceeds the suite's"):
        suite_spec("robosuite").pad_privileged(np.zeros(dim + 1))


def test_bc_state_learns_from_the_privileged_state_without_an_image(demos):
    """The learnability ceiling: BC on info["privileged_state"], no camera; the runner gives that state only
    to policies that declare they read it."""
    ds = DemoDataset([demos], state_source="privileged", use_image=False)
    assert ds.state_dim == 39 and ds[0]["image"].numel() == 0
    torch.manual_seed(0)
    cfg = {**TINY["bc"], "use_image": False, "state_source": "privileged", "crop": 0}
    policy = make_policy("bc", cfg, ds.stats, ds.state_dim, ds.action_dim)
    assert policy.privileged and not policy.uses_image and policy.encoder is None
    obs, info = _train_and_act_without_camera(policy, ds, 30)
    policy.reset()
    with pytest.raises(KeyError):
        policy.act(obs, {"instruction": info["instruction"]})
    with pytest.raises(ValueError, match="unknown state_source 'full'; known: state, privileged"):
        make_policy("bc", {**cfg, "state_source": "full"}, ds.stats, ds.state_dim, ds.action_dim)
    with pytest.raises(ValueError, match="a policy must read something: set use_image or use_state"):
        make_policy("diffusion", {**TINY["diffusion"], "use_image": False, "use_state": False}, ds.stats,
                    ds.state_dim, ds.action_dim)
    from eval.policies import checkpoint_method

    assert checkpoint_method({"policy": "bc", "config": cfg}) == "bc_state"
    assert checkpoint_method({"policy": "bc", "config": {**cfg, "use_image": True}}) == "bc_privileged"
    assert checkpoint_method({"policy": "bc", "config": TINY["bc"]}) == "bc"


def _train_and_act_without_camera(policy, ds, steps):
    """A state-only ceiling: ``steps`` of fitting lower its loss, then it acts in [-1, 1] on an env rendering no
    camera. Returns that env's first (obs, info)."""
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    before, after = _fit(policy, _batch(ds, torch.arange(16), "cpu"), steps)
    assert after < before
    policy.eval()
    env = vp_envs.make("vp/metaworld-reach-v3", split="test", cameras=())
    obs, info = env.reset(options={"episode": 0})
    env.close()
    assert "pixels" not in obs
    action = policy.act(obs, info)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)
    return obs, info


def test_dp_state_is_diffusion_policy_on_the_privileged_state_and_names_itself_a_ceiling(demos):
    """``policy=dp_state`` (and its recipe) builds Diffusion Policy with no camera on info["privileged_state"];
    it trains, acts, and its checkpoints are labelled ``diffusion_state``, a ceiling, on the leaderboard."""
    from hydra import compose, initialize_config_module

    import vp_agent.train  # noqa: F401  (registers the configs)
    from eval.leaderboard import METHOD_NAMES
    from eval.policies import checkpoint_method

    with initialize_config_module(config_module="vp_agent.conf", version_base=None):
        cfg = compose(config_name="train", overrides=["+recipe=dp-state-lite-v2", "data=[d]"])
    assert cfg.policy.name == "diffusion"
    assert (cfg.policy.config.use_image, cfg.policy.config.state_source) == (False, "privileged")
    ds = DemoDataset([demos], state_source="privileged", use_image=False, horizon=8, n_obs=2)
    torch.manual_seed(0)
    config = {**TINY["diffusion"], "use_image": False, "state_source": "privileged", "crop": 0}
    policy = make_policy("diffusion", config, ds.stats, ds.state_dim, ds.action_dim)
    assert policy.privileged and not policy.uses_image
    _train_and_act_without_camera(policy, ds, 40)
    method = checkpoint_method({"policy": "diffusion", "config": config})
    assert method == "diffusion_state" and "ceiling" in METHOD_NAMES[method]


def test_keep_every_snapshots_feed_a_learning_curve_and_a_mismatched_protocol_is_refused(demos, tmp_path):
    from eval.curve import main as curve_main, snapshots
    from eval.runner import RunError, run
    from eval_helpers import write_protocol

    out = tmp_path / "run"
    env = {**os.environ, "VP_BENCH_CACHE": str(tmp_path / "cache")}
    subprocess.run(_train_cmd(demos, out, 10) + ["keep_every=5", "lr_schedule=cosine", "warmup_steps=2",
                                                 "grad_clip=1.0"], check=True, env=env, capture_output=True)
    assert [s for s, _ in snapshots(out)] == [5, 10]
    assert curve_main([str(tmp_path / "nothing"), "--protocol", "metaworld-lite-v2", "--out", str(tmp_path / "n")]) == 2
    a = load_file(str(out / "checkpoints" / "step_000010" / "model.safetensors"))
    b = load_file(str(out / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    proto = write_protocol(tmp_path, tasks=["reach-v3"], splits=["test"], episodes=1, max_steps=5)
    assert curve_main([str(out), "--protocol", str(proto), "--episodes", "1", "--out", str(tmp_path / "c")]) == 0
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "step,task,episodes,successes,success_rate" and len(lines) == 3
    assert (tmp_path / "c.png").stat().st_size > 0

    for override, words in (({"cameras": ["corner4"]}, "reads camera(s) corner2"),
                            ({"image_size": 64}, "trained on 32-px images")):
        bad = write_protocol(tmp_path, "bad", tasks=["reach-v3"], splits=["test"], episodes=1, max_steps=5,
                             **override)
        with pytest.raises(RunError, match=words.replace("(", r"\(").replace(")", r"\)")):
            run(bad, str(out / "checkpoints" / "last"), run_dir=tmp_path / "r", progress=False)

    # a checkpoint with no demonstrations of a protocol training task is named in a warning (its rows measure
    # a partial training: one DP run started while vp-data was still writing its dataset)
    from eval.policies import load_policy_spec
    from eval.protocol import load_protocol
    from eval.runner import untrained_tasks

    pol = load_policy_spec(str(out / "checkpoints" / "last"))
    assert pol.training_record["demo_tasks"] == ["button-press-topdown-v3", "reach-v3"]
    assert untrained_tasks(load_protocol(proto), pol) == []
    wider = write_protocol(tmp_path, "wider", tasks=["reach-v3", "push-v3"], splits=["test"], episodes=1,
                           max_steps=5)
    assert untrained_tasks(load_protocol(wider), pol) == ["push-v3"]


def test_vp_train_on_a_folder_that_is_not_a_dataset_says_so_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vp_agent.train", "policy=bc", f"data=[{tmp_path}]", "steps=1",
                           f"out_dir={tmp_path / 'out'}"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "OpenGL" not in line]
    assert lines == [f"vp-train: error: {tmp_path} is not a dataset directory: {tmp_path}/manifest.json is missing"]


def test_a_failed_batched_act_leaves_the_history_as_it_was(demos):
    """The runner retries a batch that raised slot by slot; the retry must not see the observation twice."""
    policy, ds = _policy(demos, "diffusion")
    policy.eval()
    env = vp_envs.make("vp/metaworld-reach-v3", split="test", width=32, height=32)
    obs_a, info = env.reset(options={"episode": 0})
    obs_b, *_ = env.step(np.ones(4, np.float32))
    env.close()
    both = lambda o: {"state": np.stack([o["state"]] * 2),  # noqa: E731
                      "pixels": {k: np.stack([v] * 2) for k, v in o["pixels"].items()}}
    infos = [{"instruction": info["instruction"], "slot": s} for s in (0, 1)]
    policy.act(both(obs_a), infos)
    policy._queues = {0: deque(), 1: deque()}  # force a new chunk at the next call
    real = policy.predict_action_chunk
    policy.predict_action_chunk = lambda batch: (_ for _ in ()).throw(RuntimeError("batch too big")) \
        if len(batch["state"]) > 1 else real(batch)
    with pytest.raises(RuntimeError):
        policy.act(both(obs_b), infos)
    policy.act({"state": obs_b["state"][None], "pixels": {k: v[None] for k, v in obs_b["pixels"].items()}},
               [infos[0]])
    frames = [h[0] for h in policy._history[0]]
    assert len(frames) == 2
    assert np.array_equal(frames[0], obs_a["pixels"]["corner2"]) and np.array_equal(frames[1], obs_b["pixels"]["corner2"])


@pytest.mark.parametrize("name", ["diffusion"])
def test_sampling_noise_depends_on_the_episode_and_step_not_on_the_batch(demos, name):
    """Rows must depend only on the checkpoint and the episode: a chunk's noise is seeded by (episode seed,
    step), so the same episode gives the same actions alone or batched with another, in any slot."""
    policy, _ = _policy(demos, name)
    policy.eval()
    env = vp_envs.make("vp/metaworld-reach-v3", split="test", width=32, height=32)
    obs_a, info_a = env.reset(options={"episode": 0})
    obs_b, info_b = env.reset(options={"episode": 1})
    env.close()
    one = lambda o: {"state": o["state"][None], "pixels": {k: v[None] for k, v in o["pixels"].items()}}  # noqa: E731
    meta = lambda info, slot: {"instruction": info["instruction"], "seed": info["seed"], "steps": 0, "slot": slot}  # noqa: E731
    torch.manual_seed(1)
    alone = policy.act(one(obs_a), [meta(info_a, 0)])
    policy.reset()
    torch.manual_seed(2)  # the global generator no longer matters
    batched = policy.act({"state": np.stack([obs_b["state"], obs_a["state"]]),
                          "pixels": {k: np.stack([obs_b["pixels"][k], v]) for k, v in obs_a["pixels"].items()}},
                         [meta(info_b, 0), meta(info_a, 1)])
    # equal up to the rounding of batched kernels (a different global generator would differ by ~1)
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)
    policy.reset()
    other_step = policy.act(one(obs_a), [{**meta(info_a, 0), "steps": 8}])
    assert np.abs(other_step - alone).max() > 1e-3
