//! Sealing what an encrypted job writes (RFC 8216 `METHOD=AES-128`, see
//! [`farm_hls::encryption`]): each segment under the key of the period it starts in, with
//! its derived explicit IV; each I-frame as a resource of its own, so I-frame playlists
//! still work (a byte range inside a whole-segment AES-128 segment cannot be decrypted
//! on its own).

use std::collections::BTreeMap;

use farm_contract::manifest::SegmentKey;
use farm_contract::task::TaskKeys;
use farm_hls::encryption::{self, ContentKey, Iv};

/// The keys of one task.
pub struct Sealer {
    period_seconds: u32,
    keys: BTreeMap<u32, ContentKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("period_seconds", &self.period_seconds).field("periods", &self.keys.keys()).finish()
    }
}

impl Sealer {
    pub fn from_task(task: &TaskKeys) -> Result<Self, String> {
        let mut keys = BTreeMap::new();
        for k in &task.keys {
            let bytes = hex::decode(&k.key).ok().and_then(|b| <[u8; 16]>::try_from(b).ok());
            let bytes = bytes.ok_or_else(|| format!("the content key of period {} is not 32 hex digits", k.period))?;
            keys.insert(k.period, ContentKey(bytes));
        }
        if task.period_seconds == 0 || keys.is_empty() {
            return Err("the task's keys name no period".into());
        }
        Ok(Self { period_seconds: task.period_seconds, keys })
    }

    fn key(&self, period: u32) -> Result<&ContentKey, String> {
        self.keys.get(&period).ok_or_else(|| format!("the task carries no content key for key period {period}"))
    }

    /// Segment `index` of `rendition`, starting `start_seconds` into the job.
    pub fn seal(&self, rendition: &str, index: u64, start_seconds: f64, data: &[u8]) -> Result<(Vec<u8>, SegmentKey), String> {
        let period = encryption::period_of(start_seconds, self.period_seconds);
        let key = self.key(period)?;
        let iv = Iv::derive(key, rendition, index);
        Ok((encryption::encrypt(key, &iv, data), SegmentKey { period, iv: hex::encode(iv.0) }))
    }

    /// The I-frame at `frame` of `rendition` (its own resource), in its segment's period.
    pub fn seal_iframe(&self, rendition: &str, frame: u64, period: u32, data: &[u8]) -> Result<(Vec<u8>, SegmentKey), String> {
        let key = self.key(period)?;
        let iv = Iv::derive(key, &format!("{rendition}#iframe"), frame);
        Ok((encryption::encrypt(key, &iv, data), SegmentKey { period, iv: hex::encode(iv.0) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_contract::task::PeriodKey;

    #[test]
    fn segments_take_the_key_of_the_period_they_start_in() {
        let task = TaskKeys {
            period_seconds: 10,
            keys: vec![PeriodKey { period: 1, key: "11".repeat(16) }, PeriodKey { period: 2, key: "22".repeat(16) }],
        };
        let sealer = Sealer::from_task(&task).unwrap();
        let (sealed, key) = sealer.seal("720p", 3, 18.0, b"segment bytes").unwrap();
        assert_eq!(key.period, 1);
        let iv = Iv(hex::decode(&key.iv).unwrap().try_into().unwrap());
        assert_eq!(encryption::decrypt(&ContentKey([0x11; 16]), &iv, &sealed).unwrap(), b"segment bytes");
        assert_eq!(sealer.seal("720p", 4, 20.0, b"x").unwrap().1.period, 2);
        let missing = sealer.seal("720p", 0, 0.0, b"x").unwrap_err();
        assert!(missing.contains("period 0"), "{missing}");
        let (_, iframe) = sealer.seal_iframe("720p", 450, 1, b"i").unwrap();
        assert_ne!(iframe.iv, key.iv);
        assert!(!format!("{sealer:?}").contains("1111"));
        let bad = TaskKeys { period_seconds: 10, keys: vec![PeriodKey { period: 0, key: "zz".into() }] };
        assert!(Sealer::from_task(&bad).is_err());
    }
}
