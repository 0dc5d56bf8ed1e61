"""bf16 mixed-precision training (``vp-train precision=bf16``): it really runs in bf16, it keeps the loss of
fp32 training, it is deterministic, and a wrong name is one clear line."""

import subprocess

import pytest
import torch
from safetensors.torch import load_file

from vp_agent.train import _batch, autocast
from test_agent import _policy, _train_cmd, demos  # noqa: F401  (demos: the module-scoped fixture)


def _train(demos, name, precision, steps=40):  # noqa: F811
    policy, ds = _policy(demos, name)  # same initial weights for both precisions (seeded)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        torch.manual_seed(step)  # same batches, crops and noise for both precisions
        batch = _batch(ds, torch.randint(len(ds), (16,)), "cpu")
        with autocast(torch.device("cpu"), precision):
            loss = policy(batch)["loss"].float()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return policy, losses


@pytest.mark.parametrize("name", ["bc", "diffusion"])
def test_bf16_training_keeps_the_fp32_loss(demos, name):  # noqa: F811
    _, fp32 = _train(demos, name, "fp32")
    policy, bf16 = _train(demos, name, "bf16")
    tail = slice(-10, None)
    mean32, mean16 = sum(fp32[tail]) / 10, sum(bf16[tail]) / 10
    assert mean32 < 0.8 * sum(fp32[:5]) / 5, "fp32 training did not learn; the comparison means nothing"
    # Stated tolerance: the mean loss of the last 10 of 40 steps within 10% of fp32's (measured: within 2%).
    assert abs(mean16 - mean32) <= 0.10 * mean32, (mean16, mean32)
    assert fp32 != bf16, "bf16 gave bit-identical losses: autocast did not run"
    assert all(p.dtype == torch.float32 for p in policy.parameters()), "master weights must stay fp32"


def test_bf16_autocast_runs_the_convolutions_in_bf16(demos):  # noqa: F811
    policy, ds = _policy(demos, "bc")
    seen = []
    conv = next(m for m in policy.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    batch = _batch(ds, torch.arange(4), "cpu")
    for precision in ("fp32", "bf16"):
        with autocast(torch.device("cpu"), precision):
            policy(batch)
    assert seen == [torch.float32, torch.bfloat16]


def test_bf16_training_is_deterministic_and_a_wrong_precision_is_one_line(demos, tmp_path):  # noqa: F811
    """Same command, same seed, same machine and thread count: identical weights under bf16 too."""
    for run in ("a", "b"):
        subprocess.run(_train_cmd(demos, tmp_path / run, 10) + ["precision=bf16"], check=True,
                       capture_output=True)
    a = load_file(str(tmp_path / "a" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "last" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    bad = subprocess.run(_train_cmd(demos, tmp_path / "c", 10) + ["precision=fp8"], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "vp-train: error: unknown precision 'fp8'; known: fp32, bf16"
