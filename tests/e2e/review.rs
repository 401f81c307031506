//! Review copies (issue 15): the show's LUT, HDR tone mapping, BT.709 tags, burnt-in
//! timecode exact across chunk joins (read back by OCR), every audio track its own
//! rendition, and the thumbnail track. Sources are generated; output is checked with the
//! ffmpeg CLI, ffprobe and tesseract, never with the worker's own code.

use std::path::Path;

use farm_tests::fixtures::{make, small_ladder_file};
use farm_tests::picture::{frame_yuv, psnr, write_test_lut};
use farm_tests::probe::video_stream;

fn colour_tags(path: &Path) -> [String; 4] {
    video_stream(path).unwrap().colour_tags()
}
use farm_tests::worker::transcode;

/// One 640x360 rung at a high rate, so that a frame's PSNR measures the colour, not x264.
fn fine_ladder(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("fine-ladder.json");
    std::fs::write(&path, r#"{"version": 1, "video": [{"name": "360p", "width": 640, "height": 360, "bitrate_kbps": 3000}]}"#).unwrap();
    path
}

/// Flat, low-contrast pictures, as log footage looks without its LUT.
fn log_source() -> std::path::PathBuf {
    make(
        "review-log.mov",
        &["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2,eq=contrast=0.45:brightness=0.08:saturation=0.5",
          "-c:v", "libx264", "-preset", "ultrafast", "-qp", "4", "-pix_fmt", "yuv420p", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"],
    )
    .unwrap()
}

#[test]
fn a_log_source_through_a_lut_matches_the_cli_lut3d_rendering() {
    let source = log_source();
    let dir = tempfile::tempdir().unwrap();
    let lut = dir.path().join("show.cube");
    write_test_lut(&lut).unwrap();
    let out = dir.path().join("out");
    transcode(&source, &out, &fine_ladder(dir.path()), &["--lut", lut.to_str().unwrap()]).unwrap().ok().unwrap();
    let reference_chain = format!(
        "scale=in_color_matrix=bt709:in_range=tv,format=rgb48le,lut3d=file={}:interp=tetrahedral,scale=out_color_matrix=bt709:out_range=tv",
        lut.display()
    );
    let rung = out.join("360p/index.m3u8");
    for n in [10, 37] {
        let ours = frame_yuv(&rung, n, "").unwrap();
        let reference = frame_yuv(&source, n, &reference_chain).unwrap();
        let without = frame_yuv(&source, n, "").unwrap();
        let (with_lut, no_lut) = (psnr(&ours, &reference), psnr(&without, &reference));
        println!("frame {n}: {with_lut:.1} dB from the CLI's lut3d rendering; the source without the LUT {no_lut:.1} dB");
        assert!(with_lut >= 38.0, "frame {n}: {with_lut:.1} dB");
        assert!(no_lut < 30.0, "the test LUT must change the picture: {no_lut:.1} dB");
    }
    assert_eq!(colour_tags(&out.join("360p/index.m3u8")), ["bt709", "bt709", "bt709", "tv"].map(String::from));
    let review: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("review.json")).unwrap()).unwrap();
    assert_eq!(review["colour"], "LUT");
    assert_eq!(review["lut"]["location"], lut.to_str().unwrap());
}

#[test]
fn a_malformed_lut_is_refused_naming_the_line() {
    let source = log_source();
    let dir = tempfile::tempdir().unwrap();
    let lut = dir.path().join("broken.cube");
    write_test_lut(&lut).unwrap();
    let text = std::fs::read_to_string(&lut).unwrap().replacen("0.000000 0.000000 0.000000", "0.0 nan-ish 0.0", 1);
    std::fs::write(&lut, text).unwrap();
    let run = transcode(&source, &dir.path().join("out"), &small_ladder_file(), &["--lut", lut.to_str().unwrap()]).unwrap();
    assert!(!run.output.status.success());
    assert!(run.stderr().contains("line 6: \"nan-ish\" is not a number"), "{}", run.stderr());
}

/// A PQ or HLG HEVC 10-bit source is tone-mapped and tagged BT.709; the frame matches the
/// CLI's zscale + tonemap (hable) rendering, and not the source merely re-tagged.
#[test]
fn pq_and_hlg_sources_are_tone_mapped_to_bt709() {
    for (name, trc) in [("pq", "smpte2084"), ("hlg", "arib-std-b67")] {
        let file = format!("review-{name}.mov");
        let params = format!("log-level=error:colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc");
        let source = make(
            &file,
            &["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2,eq=brightness=-0.15:contrast=0.8",
              "-pix_fmt", "yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", &format!("{params}:qp=4"),
              "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc"],
        )
        .unwrap();
        assert_eq!(colour_tags(&source)[1], trc);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        transcode(&source, &out, &fine_ladder(dir.path()), &[]).unwrap().ok().unwrap();
        let tags = colour_tags(&out.join("360p/index.m3u8"));
        assert_eq!(tags, ["bt709", "bt709", "bt709", "tv"].map(String::from), "{name}");
        let reference = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv";
        let ours = frame_yuv(&out.join("360p/index.m3u8"), 20, "").unwrap();
        let mapped = psnr(&ours, &frame_yuv(&source, 20, reference).unwrap());
        let retagged = psnr(&ours, &frame_yuv(&source, 20, "").unwrap());
        println!("{name}: {mapped:.1} dB from the CLI's tone-mapped rendering, {retagged:.1} dB from the source re-tagged");
        assert!(mapped >= 38.0, "{name}: {mapped:.1} dB");
        assert!(retagged + 3.0 < mapped, "{name}: tone mapping must change the picture");
        let review: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("review.json")).unwrap()).unwrap();
        assert_eq!(review["colour"], "tone-mapped (hable) to BT.709", "{name}");
        // tone mapping off: converted by the transfer functions alone, still tagged BT.709
        let off = dir.path().join("off");
        transcode(&source, &off, &fine_ladder(dir.path()), &["--tone-map", "off"]).unwrap().ok().unwrap();
        assert_eq!(colour_tags(&off.join("360p/index.m3u8"))[1], "bt709");
        let clipped = psnr(&frame_yuv(&off.join("360p/index.m3u8"), 20, "").unwrap(), &ours);
        assert!(clipped < 40.0, "{name}: off and auto must differ ({clipped:.1} dB)");
    }
}
