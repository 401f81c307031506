"""How far an encode of slightly changed frames lands from the encode of the unchanged ones.

Issue 19 asks VMAF of A and of B against the unmarked encode of at least 98. This measures
what any pixel-domain mark is up against, per x264 rate-control mode: the frames of a
generated clip (6 s, 1280x720, 25 fps, the clips of `mark-bench`) are encoded as the worker
encodes a 720p rung (its x264 options, slice threads; `abr` is the rung's 3 Mb/s with VBV,
`cqp` a constant QP of 26, `crf` CRF 23 without VBV), then again after a change, and the
second encode is scored (VMAF v0.6.1) against the first. Printed per clip and mode: the
first encode's bit rate; `self`, the first encode against itself (the most any copy can
score); `1px`, one pixel of the first picture moved by one code value; `mark`, a
mark-like change: a sign per cell of a 16x9 grid, each luma pixel of every frame moved by
one code value that way with chance `--fraction`, and only in a share `--mbs` of the 16x16
macroblocks (chosen afresh every frame) when given.

Run by hand, from the repository root (ffmpeg on the PATH; PyPI `imageio-ffmpeg` 0.8.1
for VMAF, and numpy):
    python3 benches/mark_spread.py [--clips graphics,detail,dark-grain]
        [--modes abr,cqp,crf] [--fraction 0.8] [--mbs 0.02]
"""

import argparse
import os
import subprocess
import tempfile

import imageio_ffmpeg
import numpy as np

W, H, N = 1280, 720, 150
CLIPS = {
    "graphics": "testsrc2=size=1280x720:rate=25",
    "detail": "mandelbrot=size=1280x720:rate=25",
    "dark-grain": "gradients=size=1280x720:rate=25:speed=0.01:seed=1:n=2:c0=0x405070:c1=0xC0A080,"
    "eq=brightness=-0.3,noise=alls=20:allf=t+u",
}
# The worker's x264 options for 2 s GOPs at 25 fps (`farm_media::transcode::encode::x264_options`).
PARAMS = "scenecut=0:open-gop=0:keyint=50:min-keyint=50:cpu-independent=1"
X264 = ["-c:v", "libx264", "-thread_type", "slice", "-threads", "2", "-g", "50", "-preset", "veryfast",
        "-profile:v", "high", "-forced-idr", "1", "-x264-params", PARAMS]
MODES = {
    "abr": ["-b:v", "3000k", "-maxrate", "3300k", "-bufsize", "6000k"],
    "cqp": ["-qp", "26"],
    "crf": ["-crf", "23"],
}
VMAF_FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def frames(picture):
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", picture, "-frames:v", str(N),
           "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(N, W * H * 3 // 2)


def encode(pictures, out, mode):
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
           "-s", f"{W}x{H}", "-r", "25", "-i", "-"] + X264 + MODES[mode] + [out]
    subprocess.run(cmd, input=pictures.tobytes(), check=True)


def vmaf(dist, ref):
    cmd = [VMAF_FFMPEG, "-nostdin", "-i", dist, "-i", ref, "-lavfi", "libvmaf=n_threads=2", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return float(err.split("VMAF score:")[1].split()[0])


def one_pixel(pictures):
    changed = pictures.copy()
    changed[0, 100 * W + 100] = min(255, int(changed[0, 100 * W + 100]) + 1)
    return changed


def marked(pictures, fraction, mbs):
    rng = np.random.default_rng(1)
    cells = rng.choice([-1, 1], size=(9, 16))
    sign = np.kron(cells, np.ones((H // 9 + 1, W // 16 + 1)))[:H, :W].astype(np.int16)
    changed = pictures.copy()
    for i in range(N):
        luma = changed[i, :W * H].reshape(H, W).astype(np.int16)
        move = rng.random((H, W)) < fraction
        if mbs is not None:
            move &= np.kron(rng.random((H // 16, W // 16)) < mbs, np.ones((16, 16), bool))
        changed[i, :W * H] = np.clip(luma + sign * move, 0, 255).astype(np.uint8).reshape(-1)
    return changed


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--clips", default=",".join(CLIPS))
    args.add_argument("--modes", default=",".join(MODES))
    args.add_argument("--fraction", type=float, default=0.8)
    args.add_argument("--mbs", type=float)
    a = args.parse_args()
    print(f"mark spread: 6 s clips at 1280x720, mark moves a pixel with chance {a.fraction}"
          + (f", in {a.mbs} of the macroblocks" if a.mbs is not None else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in a.clips.split(","):
            pictures = frames(CLIPS[clip])
            changes = {"1px": one_pixel(pictures), "mark": marked(pictures, a.fraction, a.mbs)}
            for mode in a.modes.split(","):
                plain = os.path.join(tmp, f"{clip}-{mode}.mp4")
                encode(pictures, plain, mode)
                kbps = os.path.getsize(plain) * 8 / 1000 / (N / 25)
                row = [f"{clip:<11} {mode:<4} {kbps:6.0f} kb/s", f"self {vmaf(plain, plain):6.2f}"]
                for name, changed in changes.items():
                    out = os.path.join(tmp, f"{clip}-{mode}-{name}.mp4")
                    encode(changed, out, mode)
                    row.append(f"{name} {vmaf(out, plain):6.2f}")
                print("  ".join(row), flush=True)
    mbs = f" --mbs {a.mbs}" if a.mbs is not None else ""
    print(f"reproduce: python3 benches/mark_spread.py --clips {a.clips} --modes {a.modes} --fraction {a.fraction}{mbs}")


if __name__ == "__main__":
    main()
