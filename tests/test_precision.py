"""bf16 mixed-precision training (``vp-train precision=bf16``): it really runs in bf16, it keeps the loss of
fp32 training, it is deterministic, a wrong name is one clear line, and ``precision=auto`` picks bf16 only
where the CPU computes it natively (else fp32) and records what ran."""

import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from vp_agent import train as train_module
from vp_agent.train import _batch, autocast, native_bf16, resolve_precision
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
    assert bad.stderr.strip().splitlines()[-1] == "vp-train: error: unknown precision 'fp8'; known: auto, fp32, bf16"


@pytest.mark.parametrize("flags, expected", [
    ({"fma", "avx", "avx2"}, "fp32"),                               # AVX2 only: bf16 would be emulated
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),                   # AVX-512 BF16
    ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "bf16"),          # AMX
    ({"fp", "asimd", "bf16"}, "bf16"),                              # Arm with the bf16 feature
    (set(), "fp32"),                                                # flags unknown: never risk emulation
])
def test_auto_precision_is_bf16_only_with_bf16_units(monkeypatch, flags, expected):
    monkeypatch.setattr(train_module, "_cpu_flags", lambda: flags)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == expected
    assert native_bf16(cpu)[0] == (expected == "bf16")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"  # as asked
    with pytest.raises(ValueError, match="known: auto, fp32, bf16"):
        resolve_precision("fp16", cpu)


def test_this_machine_flags_are_read(monkeypatch):
    """On Linux the real /proc/cpuinfo is parsed: an x86 or Arm CPU reports a non-empty flag set."""
    import platform

    if platform.system() != "Linux":
        pytest.skip("flags are read from /proc/cpuinfo on Linux only")
    flags = train_module._cpu_flags()
    assert flags and (("sse2" in flags) or ("fp" in flags) or ("asimd" in flags)), sorted(flags)[:10]


def test_auto_precision_run_records_what_ran(demos, tmp_path):  # noqa: F811
    """A run with ``precision=auto`` saves the resolved precision in its checkpoint's training config, so the
    checkpoint (and its recipe hash) says what it was trained with, and the log says why."""
    run = subprocess.run(_train_cmd(demos, tmp_path / "auto", 4) + ["precision=auto"], capture_output=True,
                         text=True, check=True)
    meta = json.loads((tmp_path / "auto" / "checkpoints" / "last" / "config.json").read_text())
    ran = meta["train_config"]["precision"]
    assert ran == ("bf16" if native_bf16(torch.device("cpu"))[0] else "fp32")
    assert f"precision=auto -> {ran}" in run.stdout + run.stderr
