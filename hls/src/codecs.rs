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

#[cfg(test)]
mod tests {
    use super::*;

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
