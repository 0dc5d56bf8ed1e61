"""eval.gallery: rollout mp4s become small GIFs with an index that says what each episode did."""

from __future__ import annotations

import numpy as np
from PIL import Image

from eval.gallery import main
from eval.runner import write_video


def test_gallery_writes_gifs_and_an_index(tmp_path, capsys):
    import pandas as pd

    video = tmp_path / "run" / "videos" / "reach-v3" / "camera_L3" / "ep001_vs_generated.mp4"
    video.parent.mkdir(parents=True)
    frames = []
    for i in range(12):  # a white block moving right: every frame differs
        f = np.zeros((16, 32, 3), np.uint8)
        f[4:12, 2 * i:2 * i + 6] = 255
        frames.append(f)
    write_video(video, frames, fps=10)
    pd.DataFrame([dict(task="reach-v3", split="camera", level=3, episode=1, success=True, steps=42,
                       video_psnr=21.5)]).to_parquet(tmp_path / "run" / "episodes.parquet")
    out = tmp_path / "gallery"
    out.mkdir()
    (out / "old.gif").write_bytes(b"GIF89a")  # from an earlier call: removed
    assert main([str(video), "--out", str(out), "--scale", "2", "--every", "2"]) == 0
    gif = out / "run_reach-v3_camera_L3_ep001_vs_generated.gif"
    im = Image.open(gif)
    assert im.n_frames == 6 and im.size == (64, 32)
    assert not (out / "old.gif").exists()
    index = (out / "README.md").read_text()
    assert f"]({gif.name})" in index and "success in 42 steps, generated-vs-executed PSNR 21.5 dB" in index
    assert main([str(tmp_path / "nope.mp4"), "--out", str(out)]) == 2
    assert "no such video" in capsys.readouterr().err
