//! A media playlist as a share link hands it out: every segment URI and init segment
//! (`EXT-X-MAP`) URI replaced (by a signed object-storage URL, or kept relative for the
//! coordinator to serve) and every key URI
//! pointed at the share's own key endpoint. Line by line, so that every other byte (EXTINF
//! durations, IVs, byte ranges, tags this code does not know) stays as the farm wrote it.

use crate::encryption::key_period;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("not a media playlist")]
    NotMedia,
    #[error("segment {uri}: {source}")]
    Segment { uri: String, source: std::io::Error },
    #[error("a key URI that is not the farm's: {0}")]
    ForeignKey(String),
}

/// `text` with each segment URI `u` (and init segment URI) replaced by `segment(u)` and
/// each farm key URI of period `p` by `key(p)`.
pub fn rewrite_media(
    text: &str,
    mut segment: impl FnMut(&str) -> std::io::Result<String>,
    key: impl Fn(u32) -> String,
) -> Result<String, RewriteError> {
    if !text.starts_with("#EXTM3U") || text.lines().any(|l| l.starts_with("#EXT-X-STREAM-INF") || l.starts_with("#EXT-X-MEDIA:")) {
        return Err(RewriteError::NotMedia);
    }
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        if let Some(attributes) = line.strip_prefix("#EXT-X-KEY:") {
            out.push_str("#EXT-X-KEY:");
            out.push_str(&rewrite_key(attributes, &key)?);
        } else if let Some(attributes) = line.strip_prefix("#EXT-X-MAP:") {
            out.push_str("#EXT-X-MAP:");
            out.push_str(&rewrite_map(attributes, &mut segment)?);
        } else if line.starts_with('#') || line.trim().is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&segment(line.trim()).map_err(|source| RewriteError::Segment { uri: line.into(), source })?);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The attributes of a map tag with its init segment's `URI="..."` replaced.
fn rewrite_map(attributes: &str, segment: &mut impl FnMut(&str) -> std::io::Result<String>) -> Result<String, RewriteError> {
    let Some((start, end)) = uri_attribute(attributes) else { return Ok(attributes.into()) };
    let uri = &attributes[start..end];
    let signed = segment(uri).map_err(|source| RewriteError::Segment { uri: uri.into(), source })?;
    Ok(format!("{}{signed}{}", &attributes[..start], &attributes[end..]))
}

/// Where the value of `URI="..."` starts and ends in a tag's attributes.
fn uri_attribute(attributes: &str) -> Option<(usize, usize)> {
    let start = attributes.find("URI=\"")? + 5;
    let end = attributes[start..].find('"')? + start;
    Some((start, end))
}

/// The attributes of a key tag with its `URI="..."` replaced.
fn rewrite_key(attributes: &str, key: &impl Fn(u32) -> String) -> Result<String, RewriteError> {
    let Some(start) = attributes.find("URI=\"").map(|i| i + 5) else { return Ok(attributes.into()) };
    let end = attributes[start..].find('"').map(|i| start + i).ok_or_else(|| RewriteError::ForeignKey(attributes.into()))?;
    let uri = &attributes[start..end];
    let period = key_period(uri).ok_or_else(|| RewriteError::ForeignKey(uri.into()))?;
    Ok(format!("{}{}{}", &attributes[..start], key(period), &attributes[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/v1/jobs/j1/keys/0\",IV=0x0102\n#EXTINF:2.002,\nseg_00000000.ts\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/v1/jobs/j1/keys/1\",IV=0x0304\n#EXTINF:1.001,\nseg_00000001.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn segments_and_keys_are_replaced_and_nothing_else_changes() {
        let out = rewrite_media(MEDIA, |u| Ok(format!("https://s3.example/b/out/720p/{u}?X-Amz-Signature=abc")), |p| format!("/s/tok/keys/{p}")).unwrap();
        let expected = MEDIA
            .replace("/v1/jobs/j1/keys/", "/s/tok/keys/")
            .replace("\nseg_", "\nhttps://s3.example/b/out/720p/seg_")
            .replace(".ts\n", ".ts?X-Amz-Signature=abc\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn an_init_segment_is_signed_like_the_segments() {
        let media = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-MAP:URI=\"init.mp4\"\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/v1/jobs/j1/keys/0\",IV=0x01\n#EXTINF:2,\nseg_00000.m4s\n#EXT-X-ENDLIST\n";
        let out = rewrite_media(media, |u| Ok(format!("https://s3/{u}?sig")), |p| format!("/s/t/keys/{p}")).unwrap();
        assert!(out.contains("#EXT-X-MAP:URI=\"https://s3/init.mp4?sig\"\n"), "{out}");
        assert!(out.contains("\nhttps://s3/seg_00000.m4s?sig\n") && out.contains("URI=\"/s/t/keys/0\""), "{out}");
    }

    #[test]
    fn a_master_playlist_or_a_foreign_key_is_refused() {
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n";
        assert!(matches!(rewrite_media(master, |u| Ok(u.into()), |p| p.to_string()), Err(RewriteError::NotMedia)));
        let foreign = MEDIA.replace("/v1/jobs/j1/keys/1", "https://elsewhere/key");
        assert!(matches!(rewrite_media(&foreign, |u| Ok(u.into()), |p| p.to_string()), Err(RewriteError::ForeignKey(_))));
        let failing = rewrite_media(MEDIA, |_| Err(std::io::Error::other("no signer")), |p| p.to_string());
        assert!(matches!(failing, Err(RewriteError::Segment { .. })));
    }
}
