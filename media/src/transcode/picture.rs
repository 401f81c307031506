//! The picture chain of a review copy, at the source's size, before any rendition scales:
//! deinterlace and rotate, bring the colour to BT.709 SDR limited range (tone-mapping PQ
//! and HLG, converting BT.601 and BT.2020, or applying the show's LUT), then burn in
//! timecode, clip name, frame number and watermark.
//!
//! Takes the source's description, the job's [`Review`] and the task's first frame; hands
//! on an FFmpeg filter chain ([`super::filter::PictureFilter`] runs it). Colour work runs on
//! 10-bit or float pictures and the chain ends in 10-bit 4:2:2, so only the renditions'
//! scalers round to 8 bits. Text sizes follow the smallest rung, so burn-ins stay legible
//! (digits at least 16 pixels tall) on every rung once scaled.

use std::path::{Path, PathBuf};

use ffmpeg_next::frame;

use farm_contract::review::{BurnIn, Review, ToneMap};
use farm_contract::timeline::FrameRate;

use super::lut_kernel::LutKernel;
use crate::lut::Cube;
use crate::source::SourceInfo;
use ffmpeg_next::color::{Primaries, Range, Space, TransferCharacteristic};
use ffmpeg_next::format::Pixel;

/// The font burn-ins are drawn with: Debian's `fonts-dejavu-core` (see the README).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

/// Font size on the smallest rung, in pixels: DejaVu Sans Mono's digits are 0.73 em tall,
/// so 24 px gives 17.5 px digits.
const SMALLEST_RUNG_FONT_PX: f64 = 24.0;

/// What the decoder says about a picture's colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourIn {
    pub primaries: Primaries,
    pub transfer: TransferCharacteristic,
    pub matrix: Space,
    pub range: Range,
    pub format: Pixel,
    pub height: u32,
}

/// What the colour stage does.
#[derive(Debug, Clone, PartialEq)]
pub enum ColourWork {
    /// Already BT.709 limited range: the scalers take it as it is.
    None,
    /// A conversion to BT.709 (primaries in linear light, matrix, range), no tone mapping.
    Convert(ZscaleIn),
    /// PQ or HLG to SDR: linear light, Hable curve, BT.709.
    ToneMap(ZscaleIn),
    /// The show's LUT on R'G'B' decoded with the source's matrix (zscale's name) and range.
    Lut { matrix: &'static str, full_range: bool },
}

/// zscale's names for the input's description.
#[derive(Debug, Clone, PartialEq)]
pub struct ZscaleIn {
    pub transfer: &'static str,
    pub primaries: &'static str,
    pub matrix: &'static str,
    pub full_range: bool,
}

impl ColourIn {
    fn full_range(&self) -> bool {
        self.range == Range::JPEG
            || matches!(self.format, Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P)
    }

    fn is_hdr(&self) -> bool {
        matches!(self.transfer, TransferCharacteristic::SMPTE2084 | TransferCharacteristic::ARIB_STD_B67)
    }

    /// The description, unspecified parts guessed as players do: SD is BT.601, the rest
    /// BT.709; BT.2020 primaries come with the BT.2020 matrix.
    pub fn zscale(&self) -> ZscaleIn {
        let sd = self.height <= 576;
        let primaries = match self.primaries {
            Primaries::BT2020 => "2020",
            Primaries::BT470BG => "bt470bg",
            Primaries::SMPTE170M | Primaries::SMPTE240M => "170m",
            Primaries::BT709 => "709",
            _ if sd => "170m",
            _ => "709",
        };
        let transfer = match self.transfer {
            TransferCharacteristic::SMPTE2084 => "smpte2084",
            TransferCharacteristic::ARIB_STD_B67 => "arib-std-b67",
            TransferCharacteristic::BT2020_10 | TransferCharacteristic::BT2020_12 => "2020_10",
            TransferCharacteristic::SMPTE170M | TransferCharacteristic::SMPTE240M => "601",
            TransferCharacteristic::IEC61966_2_1 => "iec61966-2-1",
            TransferCharacteristic::Linear => "linear",
            _ => "709",
        };
        let matrix = match self.matrix {
            Space::BT2020NCL => "2020_ncl",
            Space::BT2020CL => "2020_cl",
            Space::BT470BG => "470bg",
            Space::SMPTE170M | Space::SMPTE240M => "170m",
            Space::BT709 => "709",
            _ if primaries == "2020" => "2020_ncl",
            _ if sd => "170m",
            _ => "709",
        };
        ZscaleIn { transfer, primaries, matrix, full_range: self.full_range() }
    }

    /// The colour stage for this picture under the job's settings.
    pub fn work(&self, review: &Review, lut: bool) -> ColourWork {
        let z = self.zscale();
        if lut {
            return ColourWork::Lut { matrix: z.matrix, full_range: z.full_range };
        }
        if self.is_hdr() && review.tone_map == ToneMap::Auto {
            return ColourWork::ToneMap(z);
        }
        let bt709 = z.primaries == "709" && z.matrix == "709" && !z.full_range && !self.is_hdr();
        if bt709 { ColourWork::None } else { ColourWork::Convert(z) }
    }
}

impl ColourWork {
    /// The filter chain, or nothing when the picture needs no colour work.
    pub fn chain(&self, lut_file: Option<&Path>) -> Option<String> {
        let range = |full: bool| if full { "full" } else { "limited" };
        Some(match self {
            Self::None => return None,
            Self::Convert(z) => format!(
                "zscale=tin={}:pin={}:min={}:rin={}:t=709:p=709:m=709:r=limited,format=yuv422p10le",
                z.transfer, z.primaries, z.matrix, range(z.full_range)
            ),
            // Hable, in linear light with 100 nits as 1.0, as FFmpeg's documented recipe.
            Self::ToneMap(z) => format!(
                "zscale=tin={}:pin={}:min={}:rin={}:t=linear:npl=100,format=gbrpf32le,zscale=p=709,\
                 tonemap=tonemap=hable:desat=0,zscale=t=709:m=709:r=limited,format=yuv422p10le",
                z.transfer, z.primaries, z.matrix, range(z.full_range)
            ),
            // FFmpeg's route, where the single-pass kernel cannot run (see `PictureSetup::plan`).
            Self::Lut { matrix, full_range } => format!(
                "scale=in_color_matrix={}:in_range={}:out_color_matrix=bt709,format=gbrp16le,\
                 lut3d=file={}:interp=tetrahedral,\
                 scale=in_color_matrix=bt709:out_color_matrix=bt709:out_range=tv,format=yuv422p10le",
                match *matrix {
                    "2020_ncl" | "2020_cl" => "bt2020",
                    "170m" | "470bg" => "bt601",
                    _ => "bt709",
                },
                if *full_range { "pc" } else { "tv" },
                escape(&lut_file.expect("a LUT stage has a LUT file").to_string_lossy()),
            ),
        })
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::None => "none (BT.709)",
            Self::Convert(_) => "converted to BT.709",
            Self::ToneMap(_) => "tone-mapped (hable) to BT.709",
            Self::Lut { .. } => "LUT",
        }
    }
}

/// Files the burn-ins read their text from: text goes through files, never through the
/// filter graph's syntax, so no clip name or watermark can change the graph.
#[derive(Debug, Clone, Default)]
pub struct TextFiles {
    pub clip_name: Option<PathBuf>,
    pub watermark: Option<PathBuf>,
}

/// Burn-ins for a task whose first frame is `first_frame` on the job's timeline.
pub struct BurnIns<'a> {
    pub review: &'a Review,
    pub rate: FrameRate,
    pub first_frame: u64,
    /// The picture's size at this stage, and the smallest rung's height.
    pub width: u32,
    pub height: u32,
    pub smallest_height: u32,
    pub font: &'a Path,
    pub text: &'a TextFiles,
}

impl BurnIns<'_> {
    /// drawtext filters, or nothing when the job burns nothing in. drawtext counts the
    /// frames it draws from 0; this task's first frame is `first_frame`, so the start
    /// timecode and frame number passed here are the job's plus `first_frame`.
    pub fn chain(&self) -> Option<String> {
        let scale = f64::from(self.height) / f64::from(self.smallest_height.max(1));
        let size = (SMALLEST_RUNG_FONT_PX * scale.max(1.0)).ceil() as u32;
        let margin = size / 2;
        let font = escape(&self.font.to_string_lossy());
        let common = format!("fontfile={font}:fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw={}", (size / 6).max(2));
        let mut parts = Vec::new();
        if let (true, Some(file)) = (self.review.burns(BurnIn::ClipName), &self.text.clip_name) {
            parts.push(format!("drawtext={common}:expansion=none:textfile={}:x={margin}:y={margin}", escape(&file.to_string_lossy())));
        }
        if self.review.burns(BurnIn::Timecode) {
            let start = self.review.start_timecode;
            let first = start.plus_frames(self.first_frame, self.rate).unwrap_or(start);
            parts.push(format!(
                "drawtext={common}:timecode={}:timecode_rate={}/{}:x={margin}:y=h-th-{margin}",
                escape(&first.to_string()),
                self.rate.num,
                self.rate.den
            ));
        }
        if self.review.burns(BurnIn::FrameNumber) {
            parts.push(format!(
                "drawtext={common}:text={}:start_number={}:x={margin}:y=h-2*th-3*{margin}",
                escape("%{frame_num}"),
                self.first_frame
            ));
        }
        if let Some(file) = &self.text.watermark {
            // Centred, where a crop cannot take it away without taking the picture.
            let chars = self.review.watermark.as_deref().map_or(1, |t| t.chars().count().max(1));
            let wide = (1.4 * f64::from(self.width) / chars as f64) as u32;
            let size = wide.clamp(size, (self.height / 6).max(size));
            parts.push(format!(
                "drawtext=fontfile={font}:fontsize={size}:fontcolor=white@0.4:borderw={}:bordercolor=black@0.3:\
                 expansion=none:textfile={}:x=(w-tw)/2:y=(h-th)/2",
                (size / 24).max(1),
                escape(&file.to_string_lossy())
            ));
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// What the picture chain of one task needs, prepared before decoding starts: the job's
/// review settings and the files its filters read (canonical LUT, burn-in text), which
/// live in a folder of their own as long as the task.
#[derive(Default)]
pub struct PictureSetup {
    /// `None` for tasks split before review settings existed: no colour work, as then.
    pub review: Option<Review>,
    pub lut_file: Option<PathBuf>,
    pub text: TextFiles,
    pub font: PathBuf,
    /// Height of the job's smallest rung, which burn-in sizes follow.
    pub smallest_height: u32,
    /// The task's first frame on the job's timeline.
    pub first_frame: u64,
    pub dir: Option<tempfile::TempDir>,
    /// The parsed LUT, for the single-pass kernel.
    pub cube: Option<Cube>,
}

/// The picture chain of one task, in up to three steps: an FFmpeg graph, the LUT pass,
/// an FFmpeg graph (burn-ins). Without the LUT pass everything is in `before`.
pub struct PicturePlan {
    pub before: Option<String>,
    pub lut: Option<LutKernel>,
    pub after: Option<String>,
    pub colour: ColourWork,
}

impl PicturePlan {
    pub fn is_empty(&self) -> bool {
        self.before.is_none() && self.lut.is_none() && self.after.is_none()
    }
}

impl PictureSetup {
    /// Writes the files the filters read: the LUT's canonical text and the burn-in texts.
    pub fn prepare(review: Option<Review>, lut: Option<&crate::lut::Cube>, font: PathBuf, first_frame: u64, smallest_height: u32) -> std::io::Result<Self> {
        let mut setup = Self { font, first_frame, smallest_height, ..Self::default() };
        let Some(r) = review else { return Ok(setup) };
        let dir = tempfile::Builder::new().prefix("farm-picture-").tempdir()?;
        let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        if let Some(cube) = lut {
            setup.lut_file = Some(write("lut.cube", &cube.canonical_text())?);
            setup.cube = Some(cube.clone());
        }
        if r.burns(BurnIn::ClipName) {
            setup.text.clip_name = Some(write("clip.txt", &r.clip_name)?);
        }
        if let Some(text) = &r.watermark {
            setup.text.watermark = Some(write("watermark.txt", text)?);
        }
        let burns = !r.burn_in.is_empty() || r.watermark.is_some();
        if burns && !setup.font.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("burn-in font {} is missing (Debian package fonts-dejavu-core)", setup.font.display()),
            ));
        }
        setup.review = Some(r);
        setup.dir = Some(dir);
        Ok(setup)
    }

    /// The whole picture chain for a source whose first picture is `first`: deinterlace,
    /// rotate, colour, burn-ins; empty when the pictures can go straight to the scalers.
    /// A LUT on limited-range Y'CbCr goes through [`LutKernel`] where the CPU can run it
    /// (one pass instead of FFmpeg's conversions around `lut3d`); otherwise, and for RGB or
    /// full-range sources, through FFmpeg.
    pub fn plan(&self, info: &SourceInfo, first: &frame::Video) -> PicturePlan {
        let mut parts = Vec::new();
        if info.interlaced || first.is_interlaced() {
            parts.push("bwdif=mode=send_frame:parity=auto:deint=interlaced".to_string());
        }
        match info.rotation {
            90 => parts.push("transpose=clock".into()),
            180 => parts.push("hflip,vflip".into()),
            270 => parts.push("transpose=cclock".into()),
            _ => {}
        }
        let mut work = ColourWork::None;
        if let Some(review) = &self.review {
            let colour = ColourIn {
                primaries: first.color_primaries(),
                transfer: first.color_transfer_characteristic(),
                matrix: first.color_space(),
                range: first.color_range(),
                format: first.format(),
                height: first.height(),
            };
            work = colour.work(review, self.lut_file.is_some());
            if let (ColourWork::Lut { matrix, full_range: false }, Some(cube), true) = (&work, &self.cube, kernel_takes(first.format())) {
                if let Some(kernel) = LutKernel::new(cube, matrix, false) {
                    parts.push("format=yuv422p10le".into());
                    let before = Some(parts.join(","));
                    let after = self.burn_ins(info, first, review).chain();
                    return PicturePlan { before, lut: Some(kernel), after, colour: work };
                }
            }
            parts.extend(work.chain(self.lut_file.as_deref()));
            parts.extend(self.burn_ins(info, first, review).chain());
        }
        PicturePlan { before: (!parts.is_empty()).then(|| parts.join(",")), lut: None, after: None, colour: work }
    }

    fn burn_ins<'a>(&'a self, info: &SourceInfo, first: &frame::Video, review: &'a Review) -> BurnIns<'a> {
        let (width, height) = if info.rotation % 180 == 90 { (first.height(), first.width()) } else { (first.width(), first.height()) };
        BurnIns {
            review,
            rate: info.rate,
            first_frame: self.first_frame,
            width,
            height,
            smallest_height: self.smallest_height,
            font: &self.font,
            text: &self.text,
        }
    }
}

/// Limited-range planar Y'CbCr that FFmpeg converts to 10-bit 4:2:2 without touching range
/// or matrix: what camera originals decode to. Others take FFmpeg's LUT route.
fn kernel_takes(format: Pixel) -> bool {
    use Pixel::*;
    matches!(
        format,
        YUV420P | YUV422P | YUV444P | YUV420P10LE | YUV422P10LE | YUV444P10LE | YUV420P12LE | YUV422P12LE | YUV444P12LE | NV12 | P010LE
    )
}

/// A value escaped for an option inside a filter graph description: once for the
/// option parser, once more for the graph parser (what `av_escape` does twice).
pub fn escape(value: &str) -> String {
    let once = backslash(value, "\\':");
    backslash(&once, "\\'[],;")
}

fn backslash(value: &str, special: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if special.contains(c) || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
