//! Filter graphs: picture fixes before scaling, and the audio mix-down.
//!
//! [`PictureFilter`] runs the picture chain of [`super::picture`] (deinterlacing with bwdif,
//! one frame out per frame in, so the frame rate stays the source's; rotation; colour;
//! burn-ins); it is built only when a source needs it. [`AudioMix`] takes one or two decoded tracks, merges them, places the first sample
//! on the video's time zero (padding or trimming), resamples and down-mixes to the
//! ladder's layout and hands on frames of exactly the AAC encoder's frame size.

use ffmpeg_next as ffmpeg;
use std::collections::VecDeque;

use ffmpeg::{ffi, filter, frame, Rational, Rescale};

use super::decode::share;
use super::lut_kernel::LutKernel;
use super::picture::PicturePlan;

/// The picture chain of one task: an FFmpeg graph, the LUT pass, a second graph (built
/// on the first picture that reaches it), as [`super::picture::PicturePlan`] says.
pub struct PictureFilter {
    before: Option<GraphStage>,
    lut: Option<LutKernel>,
    after: Option<String>,
    after_graph: Option<GraphStage>,
    time_base: Rational,
    ready: VecDeque<frame::Video>,
}

impl PictureFilter {
    pub fn new(plan: PicturePlan, like: &frame::Video, time_base: Rational) -> Result<Self, ffmpeg::Error> {
        let before = plan.before.map(|spec| GraphStage::new(&spec, like, time_base)).transpose()?;
        Ok(Self { before, lut: plan.lut, after: plan.after, after_graph: None, time_base, ready: VecDeque::new() })
    }

    pub fn push(&mut self, frame: &frame::Video) -> Result<(), ffmpeg::Error> {
        match self.before.as_mut() {
            Some(graph) => {
                graph.push(frame)?;
                self.drain_before()
            }
            None => self.onwards(share(frame)),
        }
    }

    /// The end of the input: what the graphs hold back (the deinterlacer's last picture).
    pub fn flush(&mut self) -> Result<(), ffmpeg::Error> {
        if let Some(graph) = self.before.as_mut() {
            graph.flush()?;
            self.drain_before()?;
        }
        if let Some(graph) = self.after_graph.as_mut() {
            graph.flush()?;
            while let Some(f) = graph.pull() {
                self.ready.push_back(f);
            }
        }
        Ok(())
    }

    /// Next filtered frame, if one is ready, with its pts in the input time base.
    pub fn pull(&mut self) -> Option<frame::Video> {
        self.ready.pop_front()
    }

    fn drain_before(&mut self) -> Result<(), ffmpeg::Error> {
        while let Some(f) = self.before.as_mut().and_then(GraphStage::pull) {
            self.onwards(f)?;
        }
        Ok(())
    }

    /// A picture out of the first graph, through the LUT pass and the second graph.
    fn onwards(&mut self, frame: frame::Video) -> Result<(), ffmpeg::Error> {
        let frame = match &self.lut {
            Some(kernel) => kernel.apply(&frame),
            None => frame,
        };
        let Some(spec) = &self.after else {
            self.ready.push_back(frame);
            return Ok(());
        };
        if self.after_graph.is_none() {
            self.after_graph = Some(GraphStage::new(spec, &frame, self.time_base)?);
        }
        let graph = self.after_graph.as_mut().expect("built above");
        graph.push(&frame)?;
        while let Some(f) = graph.pull() {
            self.ready.push_back(f);
        }
        Ok(())
    }
}

/// One FFmpeg filter graph from a buffer source to a buffer sink.
struct GraphStage {
    graph: filter::Graph,
    time_base: Rational,
}

impl GraphStage {
    pub fn new(spec: &str, like: &frame::Video, time_base: Rational) -> Result<Self, ffmpeg::Error> {
        let mut graph = filter::Graph::new();
        let sar = like.aspect_ratio();
        let sar = if sar.numerator() > 0 { sar } else { Rational(1, 1) };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            like.width(),
            like.height(),
            ffi::AVPixelFormat::from(like.format()) as i32,
            time_base.numerator(),
            time_base.denominator(),
            sar.numerator(),
            sar.denominator()
        );
        graph.add(&filter::find("buffer").ok_or(ffmpeg::Error::FilterNotFound)?, "in", &args)?;
        graph.add(&filter::find("buffersink").ok_or(ffmpeg::Error::FilterNotFound)?, "out", "")?;
        graph.output("in", 0)?.input("out", 0)?.parse(spec)?;
        graph.validate()?;
        Ok(Self { graph, time_base })
    }

    pub fn push(&mut self, frame: &frame::Video) -> Result<(), ffmpeg::Error> {
        self.graph.get("in").expect("in").source().add(frame)
    }

    pub fn flush(&mut self) -> Result<(), ffmpeg::Error> {
        self.graph.get("in").expect("in").source().flush()
    }

    /// Next filtered frame, if one is ready, with its pts back in the input time base
    /// (bwdif halves the time base even when it puts out one frame per frame).
    pub fn pull(&mut self) -> Option<frame::Video> {
        let mut out = frame::Video::empty();
        let mut sink = self.graph.get("out").expect("out");
        let mut sink = sink.sink();
        sink.frame(&mut out).ok()?;
        let sink_tb = sink.time_base();
        if let Some(pts) = out.pts() {
            out.set_pts(Some(pts.rescale(sink_tb, self.time_base)));
        }
        Some(out)
    }
}

/// Input description of one decoded audio track.
#[derive(Debug, Clone, Copy)]
pub struct AudioInput {
    pub sample_rate: u32,
    pub format: ffmpeg::format::Sample,
    pub channels: u32,
    pub time_base: Rational,
}

pub struct AudioMix {
    graph: filter::Graph,
    inputs: usize,
}

impl AudioMix {
    pub fn new(
        inputs: &[AudioInput],
        sample_rate: u32,
        channels: u32,
        frame_size: u32,
        first_pts: i64,
    ) -> Result<Self, ffmpeg::Error> {
        let mut graph = filter::Graph::new();
        let abuffer = filter::find("abuffer").ok_or(ffmpeg::Error::FilterNotFound)?;
        for (i, input) in inputs.iter().enumerate() {
            let args = format!(
                "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout={}",
                input.time_base.numerator(),
                input.time_base.denominator(),
                input.sample_rate,
                input.format.name(),
                default_layout_name(input.channels),
            );
            graph.add(&abuffer, &format!("in{i}"), &args)?;
        }
        graph.add(&filter::find("abuffersink").ok_or(ffmpeg::Error::FilterNotFound)?, "out", "")?;
        let layout = if channels == 1 { "mono" } else { "stereo" };
        // Hard-pad or trim only real gaps (>100 ms) and the start (to `first_pts`), never
        // stretch: review audio must stay in sync with picture over hours.
        let tail = format!(
            "aresample={sample_rate}:min_comp=0.001:min_hard_comp=0.100:first_pts={first_pts},\
             aformat=sample_fmts=fltp:sample_rates={sample_rate}:channel_layouts={layout}"
        );
        // Each input starts exactly at `first_pts` (sample-exact cut in its own time base),
        // so that a chunk's audio lies on the same samples as a whole-source encode's.
        let trims: String = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let tb = input.time_base;
                let start = first_pts.rescale(Rational(1, sample_rate as i32), tb);
                format!("[in{i}]atrim=start_pts={start}[t{i}];")
            })
            .collect();
        let labels: String = (0..inputs.len()).map(|i| format!("[t{i}]")).collect();
        let spec = if inputs.len() > 1 {
            format!("{trims}{labels}amerge=inputs={},{tail}[out]", inputs.len())
        } else {
            format!("{trims}{labels}{tail}[out]")
        };
        let mut parser = graph.output("in0", 0)?;
        for i in 1..inputs.len() {
            parser = parser.output(&format!("in{i}"), 0)?;
        }
        parser.input("out", 0)?.parse(&spec)?;
        graph.validate()?;
        graph.get("out").expect("out").sink().set_frame_size(frame_size);
        Ok(Self { graph, inputs: inputs.len() })
    }

    pub fn push(&mut self, input: usize, frame: &mut frame::Audio) -> Result<(), ffmpeg::Error> {
        normalise_layout(frame);
        self.graph.get(&format!("in{input}")).expect("input").source().add(frame)
    }

    pub fn flush(&mut self) -> Result<(), ffmpeg::Error> {
        for i in 0..self.inputs {
            self.graph.get(&format!("in{i}")).expect("input").source().flush()?;
        }
        Ok(())
    }

    /// Next mixed frame (timestamps in samples from the video's time zero).
    pub fn pull(&mut self) -> Option<frame::Audio> {
        let mut out = frame::Audio::empty();
        self.graph.get("out").expect("out").sink().frame(&mut out).ok().map(|_| out)
    }
}

fn default_layout_name(channels: u32) -> String {
    // SAFETY: the layout is a local, zeroed as FFmpeg expects before av_channel_layout_default,
    // freed before return; describe writes at most `buf.len()` bytes, NUL-terminated.
    unsafe {
        let mut layout: ffi::AVChannelLayout = std::mem::zeroed();
        ffi::av_channel_layout_default(&mut layout, channels as i32);
        let mut buf = [0 as std::os::raw::c_char; 64];
        ffi::av_channel_layout_describe(&layout, buf.as_mut_ptr(), buf.len());
        ffi::av_channel_layout_uninit(&mut layout);
        std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// PCM in MOV/MXF often states no channel layout: give it the default for its channel
/// count, as the filter input was configured.
fn normalise_layout(frame: &mut frame::Audio) {
    // SAFETY: `frame` is borrowed mutably, so its AVFrame is ours for the block; the layout is
    // freed before it is set again.
    unsafe {
        let f = frame.as_mut_ptr();
        let n = (*f).ch_layout.nb_channels;
        ffi::av_channel_layout_uninit(&mut (*f).ch_layout);
        ffi::av_channel_layout_default(&mut (*f).ch_layout, n);
        (*f).channel_layout = (*f).ch_layout.u.mask;
        (*f).channels = n;
    }
}
