"""Video Policy's cost against Diffusion Policy's, measured in the same run at the default (CPU) configs:
action-chunk latency (lock-step sampling, and the cheaper variants that read video features at fewer steps)
and training samples per second of the video and action stages.

    pytest tests/benchmarks/test_video_policy_speed.py -s --benchmark-columns=min,mean,rounds

The ratios (Video Policy / Diffusion Policy) land in the benchmark JSON's extra_info and are printed.
Everything here runs on one torch thread, as ``vp-eval`` (``torch_threads: 1``) and the v2 training recipes
(``threads=1``) run: with torch's default of one thread per core, the many small ops of Video Policy's U-Net
lose more to a busy second core than Diffusion Policy's convolutions do, and the ratio measured the machine's
load (CI: 6.4x lock-step / DP at 2 threads; 3.5x at 1 thread here, beside a data-generation job).
Note the work differs: a Video Policy chunk also generates (and decodes) 4 video frames, and it predicts
16 actions as DP does.
"""

import os
import time

import pytest
import torch

from vp_agent import make_policy
from vp_agent.data import DemoDataset, VideoDataset
from vp_agent.train import _batch, adamw
from vp_envs.datagen import generate

TIMES: dict[str, float] = {}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the whole module (see the module docstring), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
VARIANTS = {"lockstep": {}, "feature_steps_3": {"feature_steps": 3}, "feature_steps_1": {"feature_steps": 1}}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_vp_demos")
    generate("metaworld", ["reach-v3"], "train", 1, out, size=64, progress=False)
    return out


def _dp(demos):
    ds = DemoDataset([demos], n_obs=2, horizon=16)
    torch.manual_seed(0)
    policy = make_policy("diffusion", {"text_encoder": "hashing"}, ds.stats, ds.state_dim, ds.action_dim)
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    return policy, ds


def _vp(demos, **over):
    ds = VideoDataset([demos], horizon=16, frame_stride=4)
    torch.manual_seed(0)
    policy = make_policy("video_policy", {"text_encoder": "hashing", **over}, ds.stats, ds.state_dim, ds.action_dim)
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    policy.prepare_dataset(ds)
    return policy, ds


def _chunk(benchmark, policy, batch, key):
    policy.eval()
    with torch.no_grad():
        chunk = benchmark.pedantic(policy.predict_action_chunk, args=(batch,), rounds=5, iterations=1,
                                   warmup_rounds=1)
    assert chunk.shape == (1, 16, 4)
    TIMES[key] = benchmark.stats.stats.min
    benchmark.extra_info["ms_per_chunk"] = benchmark.stats.stats.min * 1e3


def test_chunk_latency_diffusion_policy(benchmark, demos):
    policy, ds = _dp(demos)
    item = ds[0]
    _chunk(benchmark, policy, {k: item[k][None] for k in ("image", "state", "text")}, "chunk_dp")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_chunk_latency_video_policy(benchmark, demos, variant):
    policy, ds = _vp(demos, **VARIANTS[variant])
    item = ds[0]
    batch = {"image": item["image"][None], "state": item["state"][None], "text": item["text"][None]}
    _chunk(benchmark, policy, batch, f"chunk_vp_{variant}")
    assert policy.generated[0].shape == (1, 4, 64, 64, 3)


def _train_step(benchmark, policy, ds, idx, key):
    policy.train()
    opt = adamw(policy.trainable_parameters(), 1e-4, 0.0)  # as vp-train steps
    batch = _batch(ds, idx, "cpu")

    def step():
        loss = policy(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    TIMES[key] = len(idx) / benchmark.stats.stats.min
    benchmark.extra_info["samples_per_second"] = TIMES[key]


def test_training_speed_diffusion_policy(benchmark, demos):
    policy, ds = _dp(demos)
    _train_step(benchmark, policy, ds, torch.randint(len(ds), (32,)), "train_dp")


@pytest.mark.parametrize("stage", ["video", "action"])
def test_training_speed_video_policy(benchmark, demos, stage):
    policy, ds = _vp(demos)
    policy.set_stage(stage)
    batch = policy.config.stage_batch[stage]
    _train_step(benchmark, policy, ds, torch.randint(len(ds), (batch,)), f"train_vp_{stage}")


def test_ratios_to_diffusion_policy(benchmark):
    """Same-run ratios; the CPU config's lock-step chunk must stay within 6x of DP's and the cheaper variants
    must be cheaper than lock-step (the point of having them)."""
    need = {"chunk_dp", "train_dp", *(f"chunk_vp_{v}" for v in VARIANTS)}
    if not need <= set(TIMES):
        pytest.skip("needs the other benchmarks of this file in the same run")
    ratios = {f"chunk_{v}_over_dp": TIMES[f"chunk_vp_{v}"] / TIMES["chunk_dp"] for v in VARIANTS}
    ratios.update({f"train_{s}_over_dp": TIMES[f"train_vp_{s}"] / TIMES["train_dp"]
                   for s in ("video", "action") if f"train_vp_{s}" in TIMES})
    benchmark.extra_info.update({k: round(v, 3) for k, v in {**TIMES, **ratios}.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print("\n" + "\n".join(f"{k}: {v * 1e3:.0f} ms" if k.startswith("chunk") else f"{k}: {v:.1f} samples/s"
                           for k, v in TIMES.items()))
    print("\n".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
    assert TIMES["chunk_vp_feature_steps_1"] < TIMES["chunk_vp_feature_steps_3"] < TIMES["chunk_vp_lockstep"]
    assert ratios["chunk_lockstep_over_dp"] < 6


@pytest.mark.parametrize("slots", [1, 8])
def test_chunk_latency_per_env_slot_when_batched(benchmark, demos, slots):
    """vp-eval runs one policy forward for all live env slots (``num_envs``). Video Policy's CPU config works on
    8x8 latents, where fixed per-call costs dominate: one forward for 8 slots costs far less than 8 forwards."""
    policy, ds = _vp(demos)
    item = ds[0]
    batch = {k: item[k][None].expand(slots, *item[k].shape).contiguous() for k in ("image", "state", "text")}
    policy.eval()
    with torch.no_grad():
        chunk = benchmark.pedantic(policy.predict_action_chunk, args=(batch,), rounds=3, iterations=1,
                                   warmup_rounds=1)
    assert chunk.shape == (slots, 16, 4)
    TIMES[f"chunk_vp_per_slot_{slots}"] = benchmark.stats.stats.min / slots
    benchmark.extra_info["ms_per_chunk_per_slot"] = TIMES[f"chunk_vp_per_slot_{slots}"] * 1e3


def test_batched_slots_ratio(benchmark):
    """Same-run ratio: a slot's share of an 8-slot chunk against a chunk alone (0.39 in one run here, beside two training jobs)."""
    if not {"chunk_vp_per_slot_1", "chunk_vp_per_slot_8"} <= set(TIMES):
        pytest.skip("needs test_chunk_latency_per_env_slot_when_batched in the same run")
    ratio = TIMES["chunk_vp_per_slot_8"] / TIMES["chunk_vp_per_slot_1"]
    benchmark.extra_info["per_slot_8_over_1"] = round(ratio, 3)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nVideo Policy chunk per slot, 8 slots batched / 1 slot: {ratio:.2f}x")
    assert ratio < 0.6


@pytest.mark.parametrize("slots", [1, 8])
def test_pooling_every_video_pass_in_one_call(benchmark, demos, slots):
    """sample() pools the features of all 10 video passes in one batched call (``_read_features_batched``)
    instead of one call per pass. Same run, interleaved rounds, the v2 recipe's keypoint poolers."""
    policy, ds = _vp(demos, pool="keypoints")
    policy.eval()
    item = ds[0]
    lat = item["latents"][None].expand(slots, *item["latents"].shape)  # (slots, cams, 1+F, C, h, w)
    with torch.no_grad():  # one video pass: its hooked features, as sample() keeps them per pass
        policy._video_denoise(lat[:, :, 1:].flatten(1, 2), torch.ones(slots),
                              policy._conditioning_latent(lat[:, :, 0]), item["text"][None].expand(slots, -1))
        passes = [({k: v.clone() for k, v in policy._features.items()}, torch.full((slots,), s))
                  for s in torch.linspace(0.1, 5, policy.config.num_inference_steps).tolist()]

        def per_pass():
            out = []
            for feats, sigma in passes:
                policy._features = feats
                out.append(policy._read_features(sigma, slots))
            return out

        best = {"per_pass": float("inf"), "batched": float("inf")}
        for _ in range(6):
            for key, fn in (("per_pass", per_pass), ("batched", lambda: policy._read_features_batched(passes))):
                t0 = time.perf_counter()
                out = fn()
                best[key] = min(best[key], time.perf_counter() - t0)
                TIMES[f"pool_{key}_{slots}"] = out
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    for a, b in zip(TIMES.pop(f"pool_per_pass_{slots}"), TIMES.pop(f"pool_batched_{slots}")):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    speedup = best["per_pass"] / best["batched"]
    benchmark.extra_info.update({k + "_ms": round(v * 1e3, 1) for k, v in best.items()}, speedup=round(speedup, 3))
    print(f"\n{slots} slot(s): pooling 10 passes {best['per_pass'] * 1e3:.0f} ms a call each, "
          f"{best['batched'] * 1e3:.0f} ms in one call: {speedup:.2f}x")
    if slots == 1:  # where per-call costs dominate (3x in one run beside a training job)
        assert speedup > 1.5


@pytest.mark.parametrize("slots", [1, 8])
def test_one_token_cross_attention_shortcut(benchmark, demos, slots):
    """The video U-Net's cross-attention reads one text token, so at inference it is to_out(to_v(text)) at every
    query (``OneTokenCrossAttnProcessor``). Same run, interleaved rounds: a lock-step chunk with the shortcut
    against diffusers' own attention processor; the actions must agree to float rounding."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vp_agent.policies.video_policy.modeling_video_policy import OneTokenCrossAttnProcessor

    policy, ds = _vp(demos)
    policy.eval()
    item = ds[0]
    batch = {k: item[k][None].expand(slots, *item[k].shape).contiguous() for k in ("image", "state", "text")}
    batch["noise_seed"] = list(range(slots))
    cross = [m for n, m in policy.unet.named_modules() if n.endswith("attn2")]

    def chunk(processor):
        for m in cross:
            m.set_processor(processor())
        t0 = time.perf_counter()
        out = policy.predict_action_chunk(batch)
        return out, time.perf_counter() - t0

    best = {"shortcut": float("inf"), "diffusers": float("inf")}
    with torch.no_grad():
        chunk(OneTokenCrossAttnProcessor), chunk(AttnProcessor2_0)  # warm-up
        for _ in range(6 if slots == 1 else 1):  # a 1-slot round is 1 s; at 8 slots 4 s, and not asserted
            fast, t = chunk(OneTokenCrossAttnProcessor)
            best["shortcut"] = min(best["shortcut"], t)
            plain, t = chunk(AttnProcessor2_0)
            best["diffusers"] = min(best["diffusers"], t)
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    speedup = best["diffusers"] / best["shortcut"]
    benchmark.extra_info.update({k + "_ms": round(v * 1e3, 1) for k, v in best.items()}, speedup=round(speedup, 3))
    print(f"\n{slots} slot(s): lock-step chunk {best['shortcut'] * 1e3:.0f} ms with the one-token shortcut, "
          f"{best['diffusers'] * 1e3:.0f} ms with diffusers' attention: {speedup:.2f}x")
    # it does strictly less work, but the gain is within this machine's timing spread, so the ratio is recorded,
    # not asserted (the actions are compared above): at one slot 1.05-1.15x in earlier runs beside a training
    # job, 1.01x and 1.12x run alone on 2026-12-08, yet 0.81x and 0.89x on the same idle machine when this test
    # ran after the file's other benchmarks (every chunk, with either processor, 25-40% slower then); at 8
    # slots 0.87-1.23x


@pytest.mark.skipif(not os.environ.get("VP_BENCH_COMPILE"), reason="compiling takes minutes: set VP_BENCH_COMPILE=1")
def test_compiled_video_unet_against_eager(benchmark, demos):
    """Would ``torch.compile`` of the video U-Net (inductor, CPU, dynamic batch) buy the chunk-latency target
    (a lock-step chunk within 3x Diffusion Policy's)? One run: DP's chunk and Video Policy's eager chunk at 1 and
    8 env slots, then the compiled one, with each first call's compile time; the actions must match eager's."""
    dp, dds = _dp(demos)
    dp.eval()
    item = dds[0]
    dp_batch = {k: item[k][None] for k in ("image", "state", "text")}
    policy, ds = _vp(demos)
    policy.eval()
    item = ds[0]

    def batch(slots):
        return {k: item[k][None].expand(slots, *item[k].shape).contiguous() for k in ("image", "state", "text")}

    def fastest(fn, rounds=3):
        fn()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    def chunk(slots):
        torch.manual_seed(0)
        return policy.predict_action_chunk(batch(slots))

    info = {}
    with torch.no_grad():
        info["dp_ms"] = fastest(lambda: dp.predict_action_chunk(dp_batch)) * 1e3
        eager = {n: chunk(n) for n in (1, 8)}
        for n in (1, 8):
            info[f"eager_{n}_ms"] = fastest(lambda: chunk(n)) * 1e3
        policy.unet = torch.compile(policy.unet, dynamic=True)
        for n in (1, 8):
            t0 = time.perf_counter()
            torch.testing.assert_close(chunk(n), eager[n], rtol=0, atol=1e-4)
            info[f"compile_{n}_s"] = time.perf_counter() - t0
            info[f"compiled_{n}_ms"] = fastest(lambda: chunk(n)) * 1e3
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    info.update({"eager_1_over_dp": info["eager_1_ms"] / info["dp_ms"],
                 "compiled_1_over_dp": info["compiled_1_ms"] / info["dp_ms"],
                 "compiled_speedup_1": info["eager_1_ms"] / info["compiled_1_ms"],
                 "compiled_speedup_8": info["eager_8_ms"] / info["compiled_8_ms"]})
    benchmark.extra_info.update({k: round(v, 3) for k, v in info.items()})
    print("\n" + "\n".join(f"{k}: {v:.2f}" for k, v in info.items()))
