"""Policy speed at the default (CPU-sized) configs: training samples per second and action-chunk latency.

Same run, same data, one row per policy; the samples/s and ms per chunk land in the benchmark JSON's
extra_info. The text encoder is ``hashing`` here: embeddings are cached per sentence, so the encoder is
not on either hot path.

    pytest tests/benchmarks/test_agent_speed.py --benchmark-columns=mean,rounds
"""

import pytest
import torch

from vp_agent import make_policy
from vp_agent.data import DemoDataset
from vp_agent.train import _batch
from vp_envs.datagen import generate

BATCH = 32


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_demos")
    generate("metaworld", ["reach-v3"], "train", 1, out, size=64, progress=False)
    return out


def _setup(demos, name):
    from vp_agent.policies.registry import CONFIGS

    cfg = CONFIGS[name](text_encoder="hashing")
    ds = DemoDataset([demos], n_obs=cfg.n_obs, horizon=cfg.horizon)
    torch.manual_seed(0)
    policy = make_policy(name, {"text_encoder": "hashing"}, ds.stats, ds.state_dim, ds.action_dim)
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    return policy, ds


@pytest.mark.parametrize("name", ["bc", "diffusion"])
def test_training_samples_per_second(benchmark, demos, name):
    policy, ds = _setup(demos, name)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    batch = _batch(ds, torch.randint(len(ds), (BATCH,)), "cpu")

    def step():
        loss = policy(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["samples_per_second"] = BATCH / benchmark.stats.stats.mean
    benchmark.extra_info["parameters_millions"] = sum(p.numel() for p in policy.parameters()) / 1e6


@pytest.mark.parametrize("name", ["bc", "diffusion"])
def test_action_chunk_latency(benchmark, demos, name):
    policy, ds = _setup(demos, name)
    policy.eval()
    item = ds[0]
    batch = {"image": item["image"][None], "state": item["state"][None], "text": item["text"][None]}
    with torch.no_grad():
        chunk = benchmark.pedantic(policy.predict_action_chunk, args=(batch,), rounds=10, iterations=1,
                                   warmup_rounds=1)
    assert chunk.shape == (1, policy.config.horizon, 4)
    benchmark.extra_info["ms_per_chunk"] = benchmark.stats.stats.mean * 1e3
    benchmark.extra_info["ms_per_executed_action"] = benchmark.stats.stats.mean * 1e3 / policy.config.n_action_steps
