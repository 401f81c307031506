//! A corpus of broken and malicious sources, each with the words its failure must contain.
//! Built once per machine under `target/fixtures/hostile/` from the ffmpeg CLI and bytes.

use std::path::PathBuf;

use crate::fixtures::{fixtures_dir, make, Kind};

pub struct Hostile {
    pub name: &'static str,
    pub path: PathBuf,
    /// What the error message must say.
    pub expected: &'static str,
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let dir = fixtures_dir().join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    let path = dir.join(file);
    std::fs::write(&path, data).unwrap();
    path
}

/// Pseudo-random bytes (a fixed sequence, so runs are repeatable).
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn cut(name: &'static str, data: &[u8], fraction: f64, expected: &'static str) -> Hostile {
    let len = ((data.len() as f64) * fraction) as usize;
    Hostile { name, path: write(name, &data[..len]), expected }
}

/// A small H.264 stream whose pictures become 8192x4400 (over the 8192x4320 limit) after
/// 2 s: the header the probe reads says 320x180, so only the decoder's own limit stops it.
fn grows_mid_stream() -> Hostile {
    let small = make("grow-small.ts", &["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts"]).unwrap();
    let big = make("grow-big.ts", &["-f", "lavfi", "-i", "color=size=8192x4400:rate=25:duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-output_ts_offset", "2", "-f", "mpegts"]).unwrap();
    let data = [std::fs::read(small).unwrap(), std::fs::read(big).unwrap()].concat();
    Hostile { name: "picture grows past 8K mid-stream", path: write("grows.ts", &data), expected: "could not be decoded" }
}

/// With `overwrite` bytes of noise laid over the middle of the file.
fn corrupt(name: &'static str, data: &[u8], at: f64, overwrite: usize, expected: &'static str) -> Hostile {
    let mut data = data.to_vec();
    let start = ((data.len() as f64) * at) as usize;
    let end = (start + overwrite).min(data.len());
    data[start..end].copy_from_slice(&noise(end - start, start as u32));
    Hostile { name, path: write(name, &data), expected }
}

fn made(name: &'static str, file: &str, args: &[&str], expected: &'static str) -> Hostile {
    Hostile { name, path: make(&format!("hostile-{file}"), args).unwrap(), expected }
}

pub fn corpus() -> Vec<Hostile> {
    const NOT_MEDIA: &str = "not a media file";
    const DAMAGED: &str = "truncated or damaged";
    let prores = Kind::ProRes422.make().unwrap();
    let prores_s = prores.to_str().unwrap().to_string();
    let fast = make("prores-faststart.mov", &["-i", &prores_s, "-c", "copy", "-movflags", "+faststart"]).unwrap();
    let fast_data = std::fs::read(&fast).unwrap();
    let tail_index = std::fs::read(&prores).unwrap();
    let mxf = std::fs::read(Kind::DnxhrMxf.make().unwrap()).unwrap();
    let h264 = std::fs::read(Kind::H264Mp4.make().unwrap()).unwrap();

    let mut c = vec![
        Hostile { name: "zero bytes", path: write("empty.mov", b""), expected: "is empty (0 bytes)" },
        Hostile { name: "two bytes", path: write("two-bytes.mov", b"\x00\x00"), expected: NOT_MEDIA },
        Hostile { name: "text", path: write("notes.mov", b"these are the director's notes, not a clip\n"), expected: NOT_MEDIA },
        Hostile { name: "random bytes", path: write("random.mxf", &noise(65_536, 7)), expected: NOT_MEDIA },
        Hostile { name: "random bytes, 4 MiB", path: write("random-big.mov", &noise(4 << 20, 11)), expected: NOT_MEDIA },
        Hostile { name: "zeros", path: write("zeros.mov", &vec![0u8; 1 << 20]), expected: NOT_MEDIA },
        Hostile {
            name: "HLS playlist naming local files",
            path: write("playlist.mov", b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
            expected: "container format \"hls\" is not accepted",
        },
        Hostile {
            name: "HLS playlist naming another host",
            path: write("playlist-remote.mxf", b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nhttp://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n"),
            expected: "container format \"hls\" is not accepted",
        },
        Hostile {
            name: "concat script",
            path: write("concat.mov", b"ffconcat version 1.0\nfile '/etc/passwd'\n"),
            expected: NOT_MEDIA,
        },
        Hostile {
            name: "SDP session pointing at a network stream",
            path: write("session.mov", b"v=0\no=- 0 0 IN IP4 10.0.0.1\ns=x\nc=IN IP4 10.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n"),
            expected: "is not accepted",
        },
        Hostile {
            name: "DASH manifest",
            path: write("manifest.mov", b"<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\"><Period><AdaptationSet><Representation id=\"1\" bandwidth=\"1\"><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>\n"),
            expected: NOT_MEDIA,
        },
        Hostile {
            name: "subtitles posing as video",
            path: write("subtitles.mov", b"1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nWorld\n"),
            expected: "is not accepted",
        },
        cut("moov at the end, cut in half", &tail_index, 0.5, NOT_MEDIA),
        cut("moov at the end, cut at 90 %", &tail_index, 0.9, NOT_MEDIA),
        cut("moov first, cut at 10 %", &fast_data, 0.1, DAMAGED),
        cut("moov first, cut in half", &fast_data, 0.5, DAMAGED),
        cut("moov first, cut at 95 %", &fast_data, 0.95, DAMAGED),
        cut("MXF cut in half", &mxf, 0.5, DAMAGED),
        cut("MP4 cut to its first 2 KiB", &h264, 2048.0 / h264.len() as f64, NOT_MEDIA),
        // A few bad packets are concealed (the worker repeats the last picture, up to 16 +
        // 2 % of the frames); this many fail the task.
        corrupt("ProRes frames overwritten mid-stream", &fast_data, 0.3, fast_data.len() * 2 / 5, "is damaged"),
        corrupt("H.264 packets overwritten mid-stream", &h264, 0.3, h264.len() * 2 / 5, "is damaged"),
        made("audio only", "audio-only.mov", &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le", "-f", "mov"], "has no video stream"),
        made("WAV with a .mov name", "wav.mov", &["-f", "lavfi", "-i", "sine=duration=1", "-f", "wav"], "is not accepted"),
        made("PNG still with a .mov name", "png.mov", &["-f", "lavfi", "-i", "testsrc2=size=320x240:duration=0.04", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png"], "is not accepted"),
        made("JPEG still with a .mxf name", "jpeg.mxf", &["-f", "lavfi", "-i", "testsrc2=size=320x240:duration=0.04", "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg"], "is not accepted"),
        made("animated GIF", "anim.mov", &["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-f", "gif"], "is not accepted"),
        made("9000 pixels wide", "too-wide.mov", &["-f", "lavfi", "-i", "color=size=9000x16:rate=1:duration=1", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "mov"], "picture size 9000x16 is outside"),
        made("8 pixels tall", "too-flat.mov", &["-f", "lavfi", "-i", "color=size=64x8:rate=25:duration=1", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "mov"], "picture size 64x8 is outside"),
        made(
            "decompression bomb: 8192x8192 from a few KiB",
            "bomb.mov",
            &["-f", "lavfi", "-i", "color=size=8192x8192:rate=25:duration=0.2", "-c:v", "mjpeg", "-q:v", "31", "-pix_fmt", "yuvj420p", "-f", "mov"],
            "more than the",
        ),
        grows_mid_stream(),
        made("1000 fps", "1000fps.mov", &["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1000:duration=0.1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mov"], "is outside 1..240 fps"),
        made("one frame every 10 s", "slow.mov", &["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1/10:duration=30", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mov"], "is outside 1..240 fps"),
    ];
    // Every file is named in failures by its path: keep names unique.
    c.sort_by_key(|h| h.name);
    c
}
