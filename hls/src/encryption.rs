//! HLS segment encryption as RFC 8216 defines `METHOD=AES-128`: each whole segment
//! AES-128-CBC with PKCS#7 padding, under the content key of its key period, with an IV
//! the key tag states explicitly.
//!
//! Chunks of one job are encoded in parallel by different workers, so the IV cannot be
//! the media sequence number a player would otherwise assume: it is derived from the key,
//! the rendition and the segment's index on the job's timeline (HMAC-SHA256, first 16
//! bytes). That makes it unique per segment, unpredictable without the key, and the same
//! when a retried chunk writes a segment again, so a retry leaves identical bytes.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A content key: 16 bytes, one per job and key period. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey(pub [u8; 16]);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

/// The explicit IV of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iv(pub [u8; 16]);

impl Iv {
    /// The IV of segment `index` (on the job's timeline) of `rendition` under `key`.
    pub fn derive(key: &ContentKey, rendition: &str, index: u64) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes any key length");
        mac.update(b"farm-hls-iv\0");
        mac.update(rendition.as_bytes());
        mac.update(b"\0");
        mac.update(&index.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&out[..16]);
        Self(iv)
    }

}

/// The encrypted form of a whole segment.
pub fn encrypt(key: &ContentKey, iv: &Iv, segment: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<aes::Aes128>::new(&key.0.into(), &iv.0.into()).encrypt_padded_vec_mut::<Pkcs7>(segment)
}

/// The segment back, or `None` when the key or IV is wrong (the padding does not check).
pub fn decrypt(key: &ContentKey, iv: &Iv, encrypted: &[u8]) -> Option<Vec<u8>> {
    cbc::Decryptor::<aes::Aes128>::new(&key.0.into(), &iv.0.into()).decrypt_padded_vec_mut::<Pkcs7>(encrypted).ok()
}

/// The key period of a segment starting `start_seconds` into the job: keys rotate every
/// `period_seconds` of media.
pub fn period_of(start_seconds: f64, period_seconds: u32) -> u32 {
    (start_seconds.max(0.0) / f64::from(period_seconds.max(1))).floor() as u32
}

/// How many key periods `duration_seconds` of media spans (at least one).
pub fn periods_in(duration_seconds: f64, period_seconds: u32) -> u32 {
    (duration_seconds.max(0.0) / f64::from(period_seconds.max(1))).ceil().max(1.0) as u32
}

/// Where a player asks for a job's key of one period: the coordinator, which checks who
/// asks (a principal's role, or a share) before answering.
pub fn key_uri(job_id: &str, period: u32) -> String {
    format!("/v1/jobs/{job_id}/keys/{period}")
}

/// The period of a URI made by [`key_uri`].
pub fn key_period(uri: &str) -> Option<u32> {
    let rest = uri.strip_prefix("/v1/jobs/")?;
    let (job, period) = rest.split_once("/keys/")?;
    (!job.is_empty() && !job.contains('/')).then_some(())?;
    period.parse().ok()
}

/// The key attribute of a segment in a media playlist.
pub fn playlist_key(job_id: &str, period: u32, iv_hex: &str) -> m3u8_rs::Key {
    m3u8_rs::Key { method: m3u8_rs::KeyMethod::AES128, uri: Some(key_uri(job_id, period)), iv: Some(format!("0x{iv_hex}")), ..Default::default() }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_pad_to_whole_blocks() {
        let key = ContentKey(*b"0123456789abcdef");
        let iv = Iv::derive(&key, "720p", 7);
        for len in [0, 1, 15, 16, 17, 188 * 100] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = encrypt(&key, &iv, &plain);
            assert_eq!(sealed.len(), (len / 16 + 1) * 16, "PKCS#7 always adds a block's worth at most");
            if len >= 16 {
                assert_ne!(&sealed[..16], &plain[..16]);
            }
            assert_eq!(decrypt(&key, &iv, &sealed).as_deref(), Some(&plain[..]));
        }
    }

    #[test]
    fn a_wrong_key_or_iv_does_not_give_the_segment_back() {
        let key = ContentKey([7; 16]);
        let plain = vec![0x47u8; 188 * 10];
        let iv = Iv::derive(&key, "audio", 0);
        let sealed = encrypt(&key, &iv, &plain);
        let other = ContentKey([8; 16]);
        assert_ne!(decrypt(&other, &iv, &sealed).as_deref(), Some(&plain[..]));
        assert_ne!(decrypt(&key, &Iv([0; 16]), &sealed).as_deref(), Some(&plain[..]));
    }

    #[test]
    fn ivs_differ_by_rendition_index_and_key_and_repeat_for_a_retry() {
        let key = ContentKey([1; 16]);
        let a = Iv::derive(&key, "720p", 3);
        assert_eq!(a, Iv::derive(&key, "720p", 3), "a retried chunk writes the same bytes");
        assert_ne!(a, Iv::derive(&key, "720p", 4));
        assert_ne!(a, Iv::derive(&key, "540p", 3));
        assert_ne!(a, Iv::derive(&ContentKey([2; 16]), "720p", 3));
        // "72" + index 0x30... must not collide with "720" + another index.
        assert_ne!(Iv::derive(&key, "72", 0x30), Iv::derive(&key, "720", 0));
        let tag = playlist_key("j1", 3, &hex::encode(a.0));
        assert_eq!((&tag.method, tag.uri.as_deref()), (&m3u8_rs::KeyMethod::AES128, Some("/v1/jobs/j1/keys/3")));
        assert!(tag.iv.as_deref().is_some_and(|iv| iv.starts_with("0x") && iv.len() == 2 + 32), "{tag:?}");
        assert_eq!(format!("{key:?}"), "ContentKey(..)");
    }

    #[test]
    fn keys_rotate_every_period_of_media() {
        assert_eq!(period_of(0.0, 600), 0);
        assert_eq!(period_of(599.9, 600), 0);
        assert_eq!(period_of(600.0, 600), 1);
        assert_eq!(periods_in(0.0, 600), 1);
        assert_eq!(periods_in(600.0, 600), 1);
        assert_eq!(periods_in(600.5, 600), 2);
        assert_eq!(periods_in(3600.0, 600), 6);
    }
}
