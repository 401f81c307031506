use super::*;
use farm_contract::timecode::Timecode;

fn review(tone_map: ToneMap, burn_in: Vec<BurnIn>) -> Review {
    Review {
        burn_in,
        watermark: None,
        lut: None,
        tone_map,
        start_timecode: Timecode::parse("00:00:59;28").unwrap(),
        timecode_origin: "job".into(),
        clip_name: "A001".into(),
        thumbnails: None,
        poster_frame: 0,
    }
}

fn colour(p: Primaries, t: TransferCharacteristic, m: Space, r: Range, height: u32) -> ColourIn {
    ColourIn { primaries: p, transfer: t, matrix: m, range: r, format: Pixel::YUV420P10LE, height }
}

#[test]
fn colour_work_follows_the_source_description() {
    let r = review(ToneMap::Auto, vec![]);
    let hd709 = colour(Primaries::BT709, TransferCharacteristic::BT709, Space::BT709, Range::MPEG, 1080);
    assert_eq!(hd709.work(&r, false), ColourWork::None);
    let unspecified = colour(Primaries::Unspecified, TransferCharacteristic::Unspecified, Space::Unspecified, Range::Unspecified, 1080);
    assert_eq!(unspecified.work(&r, false), ColourWork::None, "HD without tags is taken as BT.709");
    let full = ColourIn { range: Range::JPEG, ..hd709 };
    assert!(matches!(full.work(&r, false), ColourWork::Convert(ZscaleIn { full_range: true, .. })));
    let sd = colour(Primaries::Unspecified, TransferCharacteristic::Unspecified, Space::Unspecified, Range::MPEG, 576);
    let ColourWork::Convert(z) = sd.work(&r, false) else { panic!("SD is converted from BT.601") };
    assert_eq!((z.primaries, z.matrix), ("170m", "170m"));
    let sdr2020 = colour(Primaries::BT2020, TransferCharacteristic::BT2020_10, Space::BT2020NCL, Range::MPEG, 2160);
    assert!(matches!(sdr2020.work(&r, false), ColourWork::Convert(ZscaleIn { primaries: "2020", .. })));
    for t in [TransferCharacteristic::SMPTE2084, TransferCharacteristic::ARIB_STD_B67] {
        let hdr = colour(Primaries::BT2020, t, Space::BT2020NCL, Range::MPEG, 2160);
        let work = hdr.work(&r, false);
        assert!(matches!(work, ColourWork::ToneMap(_)), "{t:?}");
        assert!(work.chain(None).unwrap().contains("tonemap=tonemap=hable"));
        // tone mapping off still converts to BT.709 (highlights clip)
        let off = hdr.work(&review(ToneMap::Off, vec![]), false);
        assert!(matches!(off, ColourWork::Convert(_)), "{t:?}");
        assert!(!off.chain(None).unwrap().contains("tonemap"));
    }
    let lut = hd709.work(&r, true);
    assert_eq!(lut, ColourWork::Lut { matrix: "709", full_range: false });
    let chain = lut.chain(Some(Path::new("/tmp/a b/show.cube"))).unwrap();
    assert!(chain.contains(r"lut3d=file=/tmp/a\\\ b/show.cube:interp=tetrahedral"), "{chain}");
    assert!(chain.ends_with("format=yuv422p10le"));
}

#[test]
fn values_are_escaped_for_both_parsers() {
    assert_eq!(escape("01:00:00;00"), r"01\\:00\\:00\;00");
    assert_eq!(escape("it's"), r"it\\\'s");
    assert_eq!(escape("a,b[c]"), r"a\,b\[c\]");
}

#[test]
fn burn_ins_start_at_the_tasks_first_frame_and_scale_with_the_smallest_rung() {
    let r = review(ToneMap::Auto, vec![BurnIn::Timecode, BurnIn::FrameNumber, BurnIn::ClipName]);
    let text = TextFiles { clip_name: Some("/t/clip.txt".into()), watermark: None };
    let burn = |first_frame: u64, smallest_height: u32| {
        BurnIns {
            review: &r,
            rate: FrameRate { num: 30000, den: 1001 },
            first_frame,
            width: 1920,
            height: 1080,
            smallest_height,
            font: Path::new(DEFAULT_FONT),
            text: &text,
        }
        .chain()
        .unwrap()
    };
    let chain = burn(0, 1080);
    assert!(chain.contains(r"timecode=00\\:00\\:59\;28:timecode_rate=30000/1001"), "{chain}");
    assert!(chain.contains("start_number=0") && chain.contains("fontsize=24:"), "{chain}");
    // 2 frames later the drop-frame count skips ;00 and ;01 of the next minute
    let later = burn(2, 360);
    assert!(later.contains(r"timecode=00\\:01\\:00\;02"), "{later}");
    assert!(later.contains("start_number=2") && later.contains("fontsize=72:"), "{later}");
    assert!(later.contains(r"textfile=/t/clip.txt") && later.contains("expansion=none"));
    assert_eq!(BurnIns { review: &review(ToneMap::Auto, vec![]), ..BurnIns {
        review: &r, rate: FrameRate { num: 25, den: 1 }, first_frame: 0, width: 640, height: 360,
        smallest_height: 360, font: Path::new(DEFAULT_FONT), text: &TextFiles::default() } }.chain(), None);
}

#[test]
fn a_lut_on_camera_yuv_takes_the_single_pass_and_other_pictures_take_ffmpegs_route() {
    let cube = crate::lut::Cube::parse(b"LUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n").unwrap();
    let mut r = review(ToneMap::Auto, vec![BurnIn::Timecode]);
    r.watermark = Some("CONFIDENTIAL".into());
    let setup = PictureSetup::prepare(Some(r), Some(&cube), DEFAULT_FONT.into(), 0, 360).unwrap();
    let info = SourceInfo {
        container: "mov".into(),
        video_index: 0,
        codec: "prores".into(),
        width: 1920,
        height: 1080,
        sar: (1, 1),
        rotation: 0,
        rate: FrameRate { num: 25, den: 1 },
        time_base: (1, 25),
        start_ts: 0,
        interlaced: false,
        frames_declared: None,
        duration_seconds: None,
        audio: vec![],
        timecode: None,
    };
    let picture = |format: Pixel, range: Range| {
        let mut f = frame::Video::new(format, 1920, 1080);
        f.set_color_range(range);
        setup.plan(&info, &f)
    };
    let camera = picture(Pixel::YUV422P10LE, Range::MPEG);
    assert_eq!(camera.colour, ColourWork::Lut { matrix: "709", full_range: false });
    if LutKernel::available() {
        assert!(camera.lut.is_some());
        assert_eq!(camera.before.as_deref(), Some("format=yuv422p10le"));
        let after = camera.after.unwrap();
        assert!(after.contains("timecode=") && after.contains("watermark.txt") && !after.contains("lut3d"), "{after}");
    } else {
        assert!(camera.lut.is_none() && camera.before.unwrap().contains("lut3d"));
    }
    for (format, range) in [(Pixel::YUVJ420P, Range::JPEG), (Pixel::YUV420P, Range::JPEG), (Pixel::GBRP10LE, Range::JPEG)] {
        let plan = picture(format, range);
        assert!(plan.lut.is_none() && plan.after.is_none(), "{format:?}");
        let before = plan.before.unwrap();
        assert!(before.contains("lut3d=file=") && before.contains("in_range=pc") && before.contains("timecode="), "{format:?}: {before}");
    }
}
