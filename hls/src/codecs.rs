//! RFC 6381 codec strings for the master playlist, read from the bitstream we wrote.

/// AAC-LC, the only audio object type the ladder produces.
pub const AAC_LC: &str = "mp4a.40.2";

/// `avc1.PPCCLL` from the first SPS in an Annex B H.264 access unit: profile_idc,
/// the constraint flags byte and level_idc, exactly as the encoder wrote them.
pub fn avc1_from_annexb(data: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 3 < data.len() {
        let start = if data[i..].starts_with(&[0, 0, 1]) {
            Some(i + 3)
        } else if data[i..].starts_with(&[0, 0, 0, 1]) {
            Some(i + 4)
        } else {
            None
        };
        if let Some(nal) = start {
            if nal + 3 < data.len() && data[nal] & 0x1f == 7 {
                let sps = &data[nal + 1..nal + 4];
                return Some(format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2]));
            }
            i = nal;
        } else {
            i += 1;
        }
    }
    None
}

/// `avc1.PPCCLL` from the `avcC` box of an fMP4 init segment (ISO/IEC 14496-15 5.3.3.1:
/// configurationVersion, then AVCProfileIndication, profile_compatibility and
/// AVCLevelIndication, copied from the SPS).
pub fn avc1_from_init(init: &[u8]) -> Option<String> {
    let at = init.windows(4).position(|w| w == b"avcC")? + 4;
    let record = init.get(at..at + 4)?;
    (record[0] == 1).then(|| format!("avc1.{:02x}{:02x}{:02x}", record[1], record[2], record[3]))
}

/// `hvc1.…` from the `hvcC` box of an fMP4 init segment, as ISO/IEC 14496-15 Annex E
/// builds it: profile space (A-C, none for 0) and profile_idc; the 32 compatibility flags
/// in reverse bit order, in hex; tier (L or H) and level_idc; the six constraint bytes in
/// hex, trailing zero bytes left out. (FFmpeg's own string is not this one, and Chrome
/// refuses it: see the verified notes.)
pub fn hvc1_from_init(init: &[u8]) -> Option<String> {
    let at = init.windows(4).position(|w| w == b"hvcC")? + 4;
    let record = init.get(at..at + 13)?;
    if record[0] != 1 {
        return None;
    }
    let space = ["", "A", "B", "C"][usize::from(record[1] >> 6)];
    let tier = if record[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = record[1] & 0x1f;
    let compatibility = u32::from_be_bytes(record[2..6].try_into().ok()?).reverse_bits();
    let mut constraints: Vec<String> = record[6..12].iter().map(|b| format!("{b:X}")).collect();
    while constraints.last().is_some_and(|c| c == "0") {
        constraints.pop();
    }
    let mut out = format!("hvc1.{space}{profile}.{compatibility:X}.{tier}{}", record[12]);
    for c in constraints {
        out.push('.');
        out.push_str(&c);
    }
    Some(out)
}

/// The video codec string of an fMP4 init segment: H.264 (`avcC`) or HEVC (`hvcC`).
pub fn video_from_init(init: &[u8]) -> Option<String> {
    avc1_from_init(init).or_else(|| hvc1_from_init(init))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_hevc_string_from_the_hvcc_record() {
        // Main profile (1), Main compatible (flags 0x60000000), tier L, level 3.1 (93),
        // constraints 0xB0 then zeros: what x265 writes for a 360p main-profile stream.
        let record = [1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        let init = [&[0, 0, 0, 0x30][..], b"hvcC", &record].concat();
        assert_eq!(hvc1_from_init(&init).as_deref(), Some("hvc1.1.6.L93.B0"));
        assert_eq!(video_from_init(&init).as_deref(), Some("hvc1.1.6.L93.B0"));
        // Main 10 (2), high tier, level 5.1 (153), profile space 1.
        let record = [1, 0x40 | 0x20 | 0x02, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0x01, 153];
        let init = [&b"hvcC"[..], &record].concat();
        assert_eq!(hvc1_from_init(&init).as_deref(), Some("hvc1.A2.4.H153.90.0.0.0.0.1"));
        assert_eq!(hvc1_from_init(&init[..10]), None);
    }

    #[test]
    fn reads_the_avcc_record_of_an_init_segment() {
        // ... size, "avcC", version 1, High 4.0
        let init = [0, 0, 0, 0x2f, b'a', b'v', b'c', b'C', 1, 0x64, 0x00, 0x28, 0xff, 0xe1];
        assert_eq!(avc1_from_init(&init).as_deref(), Some("avc1.640028"));
        assert_eq!(avc1_from_init(&init[..10]), None);
        assert_eq!(avc1_from_init(b"moov....mvhd"), None);
        let mut wrong_version = init;
        wrong_version[8] = 0;
        assert_eq!(avc1_from_init(&wrong_version), None);
    }

    #[test]
    fn reads_profile_constraints_and_level_from_the_sps() {
        // AUD, then SPS (High profile 100 = 0x64, constraints 0x00, level 4.0 = 0x28)
        let au = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28, 0xac, 0, 0, 1, 0x68];
        assert_eq!(avc1_from_annexb(&au).as_deref(), Some("avc1.640028"));
        // Main profile, constraint_set1, level 3.1 with a three-byte start code
        let au = [0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0x00];
        assert_eq!(avc1_from_annexb(&au).as_deref(), Some("avc1.4d401f"));
        assert_eq!(avc1_from_annexb(&[0, 0, 1, 0x65, 1, 2, 3, 4]), None);
    }
}
