//! Looking at pictures independently of the worker: frames decoded with the `ffmpeg` CLI,
//! PSNR between two renderings, timecode read back by OCR (Debian `tesseract-ocr`), a test
//! LUT (colour tags and sizes: [`crate::probe::video_stream`]).

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// Frame `index` of `input` (a file or a playlist) as raw 8-bit 4:2:0, after `filters`
/// (applied before the frame is picked, e.g. a reference rendering).
pub fn frame_yuv(input: &Path, index: u64, filters: &str) -> Result<Vec<u8>> {
    let chain = if filters.is_empty() { format!("select=eq(n\\,{index})") } else { format!("{filters},select=eq(n\\,{index})") };
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(input)
        .args(["-vf", &format!("{chain},format=yuv420p"), "-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .context("running ffmpeg")?;
    ensure!(out.status.success() && !out.stdout.is_empty(), "ffmpeg gave no frame {index} of {}: {}", input.display(), String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// PSNR in dB over every byte (all planes), as FFmpeg's `psnr` averages 8-bit samples.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "pictures of different sizes");
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// The text OCR reads in the box of frame `index` of `input` at (`x`, `y`, `w`, `h`) as
/// fractions of the picture: scaled 4x, white text thresholded to black on white, padded,
/// digits and timecode separators only (settings that read every join of the tests'
/// 144-pixel rung right, where the plain 2x/200 recipe took a 0 for a 6).
pub fn ocr(input: &Path, index: u64, region: (f64, f64, f64, f64)) -> Result<String> {
    ocr_scaled(input, index, region, 4.0)
}

/// The digits of a text OCR read, in order (separators and strays dropped).
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// [`ocr`] with the box scaled by `scale` instead of 4 (1 for a full-size screenshot).
pub fn ocr_scaled(input: &Path, index: u64, region: (f64, f64, f64, f64), scale: f64) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("text.png");
    let (x, y, w, h) = region;
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(input)
        .args([
            "-vf",
            &format!("select=eq(n\\,{index}),crop=iw*{w}:ih*{h}:iw*{x}:ih*{y},scale=iw*{scale}:-1:flags=bicubic,format=gray,lutyuv=y='if(gt(val,150),0,255)',pad=iw+40:ih+40:20:20:white"),
            "-frames:v",
            "1",
        ])
        .arg(&png)
        .output()
        .context("running ffmpeg")?;
    ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let text = Command::new("tesseract").arg(&png).args(["-", "--psm", "7", "-c", "tessedit_char_whitelist=0123456789:;"]).output().context("running tesseract (Debian tesseract-ocr)")?;
    ensure!(text.status.success(), "tesseract: {}", String::from_utf8_lossy(&text.stderr));
    Ok(String::from_utf8_lossy(&text.stdout).trim().to_string())
}

/// A 33-point test LUT: a strong S-curve per channel and a colour twist, so that a frame
/// with it and one without differ by far more than an encode does.
pub fn write_test_lut(path: &Path) -> Result<()> {
    let n = 33;
    let curve = |v: f64| 0.5 - 0.5 * (std::f64::consts::PI * v).cos();
    let mut text = String::from("TITLE \"farm test LUT\"\n# log-like to display\nLUT_3D_SIZE 33\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n");
    for b in 0..n {
        for g in 0..n {
            for r in 0..n {
                let (r, g, b) = (r as f64 / 32.0, g as f64 / 32.0, b as f64 / 32.0);
                let (cr, cg, cb) = (curve(r), curve(g), curve(b));
                text += &format!("{:.6} {:.6} {:.6}\n", 0.8 * cr + 0.2 * cg, 0.9 * cg + 0.1 * cb, 0.7 * cb + 0.3 * cr);
            }
        }
    }
    std::fs::write(path, text)?;
    Ok(())
}
