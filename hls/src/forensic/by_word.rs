//! A watermarked rendition's media playlist as one share sees it: segment by segment, A's
//! (the rendition's `index.m3u8`) or B's (`b/index.m3u8`, beside A's segments), as the
//! share's code word says.
//!
//! Both playlists are the farm's own, of the same segments: the same header, one block of
//! tags and a URI per segment (with an encrypted job's key line, each segment's own IV), the
//! same trailer. A's header is kept, and its `EXT-X-MAP`: A's and B's init segments are the
//! same bytes, so switching between them needs no second map (which would have to come
//! before the first key line to be read in the clear). A position given B takes B's block,
//! its URI moved under `b/`. A live playlist stops before the first B position B's playlist
//! does not list yet, and is no longer ended there.

use std::collections::HashMap;

use farm_contract::manifest::VARIANT_B;

use super::Variant;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ByWordError {
    #[error("a segment URI with no position: {0}")]
    NoPosition(String),
    #[error("not a media playlist")]
    NotMedia,
}

/// One segment's lines: its tags, then its URI.
struct Block<'t> {
    lines: Vec<&'t str>,
    position: u64,
}

/// A playlist cut into its header, its segments' blocks and its trailer.
struct Cut<'t> {
    header: Vec<&'t str>,
    blocks: Vec<Block<'t>>,
    trailer: Vec<&'t str>,
}

/// Tags that belong to the segment after them, not to the playlist.
const SEGMENT_TAGS: [&str; 5] = ["#EXTINF", "#EXT-X-KEY", "#EXT-X-BYTERANGE", "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME"];

/// `a` with the segment of every position `variant` gives B taken from `b`.
pub fn media_by_word(a: &str, b: &str, variant: impl Fn(u64) -> Variant) -> Result<String, ByWordError> {
    let (a, b) = (cut(a)?, cut(b)?);
    let in_b: HashMap<u64, &Block> = b.blocks.iter().map(|block| (block.position, block)).collect();
    let mut out: Vec<String> = a.header.iter().map(|l| l.to_string()).collect();
    let mut whole = true;
    for block in &a.blocks {
        match variant(block.position) {
            Variant::A => out.extend(block.lines.iter().map(|l| l.to_string())),
            Variant::B => match in_b.get(&block.position) {
                Some(chosen) => {
                    let (uri, tags) = chosen.lines.split_last().expect("a block ends with its URI");
                    out.extend(tags.iter().map(|l| l.to_string()));
                    out.push(format!("{VARIANT_B}/{uri}"));
                }
                None => {
                    whole = false;
                    break;
                }
            },
        }
    }
    out.extend(a.trailer.iter().filter(|l| whole || !l.starts_with("#EXT-X-ENDLIST")).map(|l| l.to_string()));
    Ok(out.join("\n") + "\n")
}

fn cut(text: &str) -> Result<Cut<'_>, ByWordError> {
    if !text.starts_with("#EXTM3U") {
        return Err(ByWordError::NotMedia);
    }
    let mut cut = Cut { header: Vec::new(), blocks: Vec::new(), trailer: Vec::new() };
    let mut pending: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if !line.starts_with('#') {
            pending.push(line);
            cut.blocks.push(Block { position: position(line)?, lines: std::mem::take(&mut pending) });
        } else if !pending.is_empty() || SEGMENT_TAGS.iter().any(|t| line.starts_with(t)) {
            pending.push(line);
        } else if cut.blocks.is_empty() {
            cut.header.push(line);
        } else {
            pending.push(line);
        }
    }
    cut.trailer = pending;
    Ok(cut)
}

/// Whether a share whose word is `variant` may fetch `name` (a file of the review copy, as
/// under the job's output) when `marked(folder)` says which folders hold A of a marked
/// rendition: A's segments at its A positions, B's at its B positions, A's init segment and
/// playlist (the caller merges it, [`media_by_word`]); never B's playlist or init segment
/// (the merge does not need them), nor a marked rendition's I-frame playlist (it points
/// into A at every position). Files of other folders are not marked: reachable.
pub fn reachable(name: &str, marked: impl Fn(&str) -> bool, variant: impl Fn(u64) -> Variant) -> bool {
    let Some((folder, file)) = name.rsplit_once('/') else { return true };
    if let Some(a_folder) = folder.strip_suffix(&format!("/{VARIANT_B}")) {
        return marked(a_folder) && position(file).is_ok_and(|p| variant(p) == Variant::B);
    }
    if !marked(folder) {
        return true;
    }
    match position(file) {
        Ok(p) => variant(p) == Variant::A,
        Err(_) => !file.starts_with("iframes"),
    }
}

/// A master playlist without its I-frame playlists (a watermarked job's point into A).
pub fn without_iframes(master: &str) -> String {
    master.lines().filter(|l| !l.starts_with("#EXT-X-I-FRAME-STREAM-INF")).map(|l| format!("{l}\n")).collect()
}

/// The segment position of a URI the farm wrote: `seg_00012.m4s` is position 12.
pub fn segment_position(uri: &str) -> Option<u64> {
    position(uri).ok()
}

fn position(uri: &str) -> Result<u64, ByWordError> {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    name.strip_prefix("seg_")
        .and_then(|rest| rest.split('.').next())
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| ByWordError::NoPosition(uri.into()))
}

#[cfg(test)]
mod tests;
