//! The ladder's rules: fitting, defaults, audio by bandwidth, validation.

use super::*;

fn sizes(l: &Ladder, w: u32, h: u32) -> Vec<(u32, u32)> {
    l.fit(w, h).iter().map(|r| (r.width, r.height)).collect()
}

#[test]
fn full_hd_source_gets_the_whole_ladder() {
    let l = Ladder::default();
    assert_eq!(
        sizes(&l, 1920, 1080),
        vec![(1920, 1080), (1280, 720), (960, 540), (640, 360), (416, 234)]
    );
}

#[test]
fn never_upscales_and_keeps_the_cheapest_duplicate() {
    let l = Ladder::default();
    let fitted = l.fit(1280, 720);
    let names: Vec<&str> = fitted.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["720p", "540p", "360p", "234p"]);
    let tiny = l.fit(320, 240);
    assert_eq!(tiny.len(), 2);
    assert_eq!((tiny[0].width, tiny[0].height, tiny[0].name.as_str()), (320, 240, "360p"));
    assert_eq!((tiny[1].width, tiny[1].height, tiny[1].name.as_str()), (312, 234, "234p"));
}

#[test]
fn uhd_is_scaled_down_into_the_box() {
    assert_eq!(sizes(&Ladder::default(), 3840, 2160)[0], (1920, 1080));
    // DCI 4K keeps its wider aspect inside the 1920x1080 box
    assert_eq!(sizes(&Ladder::default(), 4096, 2160)[0], (1920, 1012));
}

#[test]
fn scope_and_portrait_keep_aspect_with_even_sizes() {
    assert_eq!(fit_in_box(1920, 804, 1280, 720), (1280, 536));
    assert_eq!(fit_in_box(1080, 1920, 1920, 1080), (1080, 1920));
    assert_eq!(fit_in_box(1080, 1920, 1280, 720), (720, 1280));
    // odd source sizes become even
    assert_eq!(fit_in_box(721, 405, 1920, 1080), (720, 404));
}

#[test]
fn ladder_json_round_trips_and_defaults_fill_in() {
    let text = r#"{"video":[{"name":"small","width":320,"height":180,"bitrate_kbps":300}]}"#;
    let l = Ladder::from_json(text).unwrap();
    assert_eq!(l.segment_seconds, 6.0);
    assert_eq!(l.cuts(), Cuts::with_lead(6000, 3, 2000));
    assert_eq!(l.audio, AudioSpec::default());
    assert_eq!(l.video[0].maxrate_kbps(), 330);
    let again = Ladder::from_json(&serde_json::to_string(&l).unwrap()).unwrap();
    assert_eq!(again, l);
}

#[test]
fn a_watermarked_jobs_default_ladder_is_the_review_ladder_in_2_s_segments_throughout() {
    let l = Ladder::forensic();
    l.validate().unwrap();
    assert_eq!(l.cuts(), Cuts::with_lead(2000, 3, 2000));
    assert_eq!(l.gop_seconds, FORENSIC_SEGMENT_SECONDS);
    assert_eq!(Ladder { segment_seconds: Ladder::default().segment_seconds, ..l }, Ladder::default());
}

#[test]
fn audio_by_bandwidth_needs_rungs_on_both_sides_of_the_line() {
    let l = Ladder::default();
    let full = l.fit(1920, 1080);
    assert_eq!(l.audio.low_group(&full), Some(64));
    assert_eq!(l.audio.low_rungs(&full), vec!["360p", "234p"]);
    // A small source's rungs are all under the line: one group, at the main rate.
    let tiny = l.fit(320, 240);
    assert_eq!(l.audio.low_group(&tiny), None);
    assert!(l.audio.low_rungs(&tiny).is_empty());
    // Turned off; and a task of a job from before it (no rate stated: no group).
    let mut off = l.clone();
    off.audio.low_bitrate_kbps = Some(0);
    assert_eq!(off.audio.low_group(&full), None);
    let text = r#"{"video":[{"name":"a","width":1920,"height":1080,"bitrate_kbps":5000},{"name":"b","width":640,"height":360,"bitrate_kbps":500}],
        "audio":{"bitrate_kbps":128,"sample_rate":48000,"channels":2}}"#;
    let task: Ladder = serde_json::from_str(text).unwrap();
    assert_eq!(task.audio.low_group(&task.fit(1920, 1080)), None);
    let new = Ladder::from_json(text).unwrap();
    assert_eq!(new.audio.low_group(&new.fit(1920, 1080)), Some(DEFAULT_LOW_AUDIO_KBPS));
}

#[test]
fn bad_ladders_are_rejected_with_a_reason() {
    let l = Ladder { version: 7, ..Ladder::default() };
    assert_eq!(l.validate(), Err(LadderError::Version(7)));
    let l = Ladder { gop_seconds: 4.0, ..Ladder::default() };
    assert!(matches!(l.validate(), Err(LadderError::Gop { .. })));
    let mut l = Ladder { lead_seconds: 0.5, ..Ladder::default() };
    assert!(l.validate().unwrap_err().to_string().contains("lead_seconds"));
    l.lead_segments = 0;
    assert_eq!(l.validate(), Ok(()), "no leading segments: their length does not matter");
    let mut l = Ladder::default();
    l.video[1].name = "../x".into();
    assert!(matches!(l.validate(), Err(LadderError::Rendition { .. })));
    let mut l = Ladder::default();
    l.video[1].name = "1080p".into();
    assert!(l.validate().unwrap_err().to_string().contains("used twice"));
    let mut l = Ladder::default();
    l.video[1].name = "audio-low".into();
    assert!(matches!(l.validate(), Err(LadderError::Rendition { .. })), "a rung folder never meets an audio one");
    for bad in [16, 200] {
        let mut l = Ladder::default();
        l.audio.low_bitrate_kbps = Some(bad);
        assert!(l.validate().unwrap_err().to_string().contains("low_bitrate_kbps"), "{bad}");
    }
    assert!(matches!(
        Ladder::from_json(r#"{"video":[], "colour":1}"#),
        Err(LadderError::Parse(_))
    ));
}

#[test]
fn a_per_title_decision_travels_with_the_ladder_and_fitting_applies_it() {
    let mut l = Ladder::from_json(r#"{"video":[{"name":"1080p","width":1920,"height":1080,"bitrate_kbps":5000},
        {"name":"360p","width":640,"height":360,"bitrate_kbps":800},{"name":"234p","width":416,"height":234,"bitrate_kbps":160}],
        "ladder_mode":"per_title"}"#).unwrap();
    // A fixed ladder serialises as before the modes existed (older workers read it).
    assert!(!serde_json::to_string(&Ladder::default()).unwrap().contains("ladder_mode"));
    let c = per_title::Complexity { kbps: 4000.0, crf: 23.0, width: 640, height: 360, frames: 15, seconds: 0.3, samples: vec![0, 50, 100], native: None };
    l.decide(1920, 1080, &c);
    let d = l.decision.clone().unwrap();
    // 360p would need 4000 kb/s at CRF 23, 5x its 800: CRF 23 + 6 log2(5) = 36.9, starved.
    assert_eq!(d.dropped, ["360p"]);
    let text = serde_json::to_string(&l).unwrap();
    let task = Ladder::from_json(&text).unwrap();
    assert_eq!(task, l, "every task gets the decision as made");
    let fitted = task.fit(1920, 1080);
    assert_eq!(fitted.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["1080p", "234p"]);
    let top = &fitted[0];
    assert_eq!((top.crf, top.bitrate_kbps, top.maxrate_kbps, top.ladder_kbps), (Some(d.rungs[0].crf), 5000, 5000, Some(5000)));
    // The audio groups follow the ladder's rates: 234p plays with the low group.
    assert_eq!(task.audio.low_rungs(&fitted), ["234p"]);
    // Deciding again replaces the decision; a fixed ladder is not decided.
    l.decide(1920, 1080, &per_title::Complexity { kbps: 50.0, ..c.clone() });
    assert!(l.decision.as_ref().unwrap().dropped.is_empty());
    let mut fixed = Ladder::default();
    fixed.decide(1920, 1080, &c);
    assert_eq!(fixed.decision, None);
    // A decision naming a rung the ladder has not is refused.
    let mut bad = task.clone();
    bad.decision.as_mut().unwrap().rungs[0].name = "4k".into();
    assert!(matches!(bad.validate(), Err(LadderError::PerTitle(_))));
    let fmp4 = Ladder::from_json(r#"{"video":[{"name":"a","width":640,"height":360,"bitrate_kbps":800}],"segment_format":"fmp4"}"#);
    assert_eq!(fmp4.unwrap().segment_format().extension(), "m4s");
    let none = Ladder::from_json(r#"{"video":[{"name":"a","width":640,"height":360,"bitrate_kbps":800}],"codecs":["hevc"]}"#);
    assert!(none.unwrap_err().to_string().contains("codecs"));
    let none = Ladder::from_json(r#"{"video":[{"name":"a","width":640,"height":360,"bitrate_kbps":800}],"codecs":[]}"#);
    assert!(none.unwrap_err().to_string().contains("codecs"));
}

#[test]
fn an_hevc_ladder_is_fmp4_only_and_twins_every_rung() {
    let rungs = r#""video":[{"name":"720p","width":1280,"height":720,"bitrate_kbps":3000},{"name":"360p","width":640,"height":360,"bitrate_kbps":800}]"#;
    let in_ts = Ladder::from_json(&format!(r#"{{{rungs},"codecs":["h264","hevc"]}}"#)).unwrap_err().to_string();
    assert!(in_ts.contains("needs \"segment_format\": \"fmp4\""), "{in_ts}");
    let clash = Ladder::from_json(r#"{"video":[{"name":"a-hevc","width":640,"height":360,"bitrate_kbps":800}],"codecs":["h264","hevc"],"segment_format":"fmp4"}"#);
    assert!(clash.unwrap_err().to_string().contains("a-hevc"));
    let ladder = Ladder::from_json(&format!(r#"{{{rungs},"codecs":["h264","hevc"],"segment_format":"fmp4"}}"#)).unwrap();
    let fitted = ladder.fit(1920, 1080);
    let names: Vec<(&str, VideoCodec)> = fitted.iter().map(|r| (r.name.as_str(), r.codec)).collect();
    assert_eq!(names, [("720p", VideoCodec::H264), ("360p", VideoCodec::H264), ("720p-hevc", VideoCodec::Hevc), ("360p-hevc", VideoCodec::Hevc)]);
    let (h264, hevc) = (&fitted[0], &fitted[2]);
    assert_eq!((hevc.width, hevc.height, hevc.bitrate_kbps, hevc.maxrate_kbps), (1280, 720, 1800, h264.maxrate_kbps * 60 / 100));
    // The twin plays with its H.264 rung's audio group: it keeps the ladder's rate.
    assert_eq!((hevc.nominal_kbps(), fitted[3].nominal_kbps()), (3000, 800));
    assert_eq!(ladder.audio.low_rungs(&fitted), ["360p", "360p-hevc"]);

    // Per-title: decided on the H.264 rungs; each twin follows its rung, at x265's CRF.
    let mut per_title = Ladder { ladder_mode: LadderMode::PerTitle, ..ladder };
    let c = per_title::Complexity { kbps: 300.0, crf: 23.0, width: 640, height: 360, frames: 15, seconds: 0.2, samples: vec![0, 50, 100], native: None };
    per_title.decide(1920, 1080, &c);
    per_title.validate().unwrap();
    let decided = per_title.fit(1920, 1080);
    assert_eq!(per_title.decision.as_ref().unwrap().rungs.len(), 2);
    let (h264, hevc) = (decided.iter().find(|r| r.name == "360p").unwrap(), decided.iter().find(|r| r.name == "360p-hevc").unwrap());
    assert_eq!(hevc.crf, h264.crf.map(|c| c + 5.0));
    assert_eq!(hevc.maxrate_kbps, h264.maxrate_kbps * 60 / 100);
}

#[test]
fn a_new_job_gets_fmp4_and_a_task_from_before_fmp4_stays_mpeg_ts() {
    let rung = r#""video":[{"name":"a","width":640,"height":360,"bitrate_kbps":800}]"#;
    // A task written before fMP4 states no format: MPEG-TS, as it was encoded.
    let old = Ladder::from_json(&format!("{{{rung}}}")).unwrap();
    assert_eq!((old.segment_format, old.segment_format()), (None, SegmentFormat::Ts));
    // A new job: the request's, else the ladder's, else fMP4; stated from then on.
    let mut new = old.clone();
    new.settle_segment_format(None);
    assert_eq!(new.segment_format, Some(SegmentFormat::Fmp4));
    assert!(serde_json::to_string(&new).unwrap().contains(r#""segment_format":"fmp4""#));
    let mut ts_ladder = Ladder::from_json(&format!(r#"{{{rung},"segment_format":"ts"}}"#)).unwrap();
    ts_ladder.settle_segment_format(None);
    assert_eq!(ts_ladder.segment_format(), SegmentFormat::Ts);
    ts_ladder.settle_segment_format(Some(SegmentFormat::Fmp4));
    assert_eq!(ts_ladder.segment_format(), SegmentFormat::Fmp4);
}
