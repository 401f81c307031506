//! A leak that is not one continuous excerpt of the job (the viewer skipped ahead or went
//! back while recording): read in pieces, each placed on the job's timeline on its own.
//!
//! The whole leak is placed at one offset first ([`super::place`]); where it skipped, only
//! the part before the skip reads there, and what follows is read against positions it does
//! not show, and its marks read weaker. Unless they read clearly ([`WHOLE_CLEAR`]) and its
//! pictures match the job's at its offset ([`UNLIKE_SHARE`]), the leak is also cut into
//! pieces of about [`PIECE_SECONDS`], each placed by its own pictures and marks. Where
//! pieces whose marks read clearly ([`PIECE_MARKED`]) sit at an offset other than the whole
//! leak's, the leak skipped, and the readings of those pieces, each at its own offset,
//! replace the whole leak's. The choice looks at where and
//! how far above chance the marks read, never at a code word: the trace's false-accusation
//! bound holds as it is.

use farm_hls::forensic::Observation;
use farm_media::forensic_mark::align::{contenders, likeness_at, Thumb};
use farm_media::forensic_mark::frames::Frames;

use super::{place, JobCopy, Placed, CONTENDERS};

/// Seconds of leak in a piece, at least; a leak shorter than two is read whole only.
pub const PIECE_SECONDS: f64 = 20.0;

/// Standard errors above chance ([`farm_media::forensic_mark::detect::Reading::above_chance`])
/// a piece's marks must read at to count as placed: at a wrong offset marks read -0.8 to 1.7
/// (see `MARKED` above).
const PIECE_MARKED: f64 = 4.0;

/// Standard errors above chance at which the whole leak's marks read clearly enough not to
/// look for a skip: a part read at another offset would lower them, and a leak of the
/// farm's test clips at its own offset reads 34 to 45. A skip in a leak that reads above
/// it costs the trace the evidence after the skip, not the verdict.
const WHOLE_CLEAR: f64 = 12.0;

/// A leak thumb no more alike than this to the job's at the leak's offset shows another
/// moment (a thumb of the moment it shows, cropped, scaled and re-coded, agrees at 0.9 or
/// more; see `align`).
const UNLIKE: f32 = 0.5;

/// The share of a leak's thumbs unlike the job's at its offset from which it is read in
/// pieces even where its marks read clearly.
const UNLIKE_SHARE: f64 = 0.2;

/// Pieces placed further apart than this (seconds) are at different moments of the job.
const APART_SECONDS: f64 = 0.5;

/// What the trace reads: the observations, where the leak (its first piece read, when read
/// in pieces) starts on the job's timeline, and how it was placed when that needs saying.
pub struct Found {
    pub offset: f64,
    pub observations: Vec<Observation>,
    pub note: Option<String>,
}

/// The whole leak's reading (`whole`, None when it covers no watermarked position at its
/// offset), or, where its pieces show that it skipped, theirs.
pub fn choose(copy: &JobCopy, leaked: &Frames, job: &[Thumb], leak: &[Thumb], whole: Option<Placed>) -> anyhow::Result<Option<Found>> {
    let clear = whole.as_ref().is_some_and(|w| w.reading.above_chance >= WHOLE_CLEAR && !pictures_part(job, copy.rate, leak, w.offset));
    let whole = whole.map(|p| Found { offset: p.offset, observations: p.reading.observations, note: p.note });
    let spans = spans(leaked);
    if spans.len() < 2 || clear {
        return Ok(whole);
    }
    let mut pieces = Vec::new();
    for (from, to) in spans {
        let thumbs = thumbs_in(leak, from, to);
        let placed = contenders(job, copy.rate, &thumbs, 1, CONTENDERS);
        let reading = if placed.is_empty() { None } else { place(copy, &leaked.shown(from..to), &placed, false)? };
        pieces.push(Piece { from, to, thumbs, placed: reading.filter(|p| p.reading.above_chance >= PIECE_MARKED) });
    }
    tracing::info!(pieces = ?pieces.iter().map(|p| (p.from, p.to, p.placed.as_ref().map(|p| (p.offset, p.reading.above_chance)))).collect::<Vec<_>>(), "leak read in pieces");
    let elsewhere = |offset: f64| whole.as_ref().is_none_or(|w| (offset - w.offset).abs() > APART_SECONDS);
    if !pieces.iter().filter_map(|p| p.placed.as_ref()).any(|p| elsewhere(p.offset)) {
        return Ok(whole);
    }
    let (mut observations, mut said) = (Vec::new(), Vec::new());
    for (k, piece) in pieces.iter().enumerate() {
        if let Some(p) = &piece.placed {
            observations.extend(p.reading.observations.iter().cloned());
            said.push(format!("{:.1}-{:.1} s of the leak at {:.2} s ({:.1} standard errors above chance)", piece.from, piece.to, p.offset, p.reading.above_chance));
            continue;
        }
        let (Some(Some(before)), Some(Some(after))) = (k.checked_sub(1).map(|k| pieces[k].placed.as_ref()), pieces.get(k + 1).map(|p| p.placed.as_ref())) else {
            said.push(format!("{:.1}-{:.1} s left out (its marks read weakly)", piece.from, piece.to));
            continue;
        };
        let skip = skip_in(job, copy.rate, &piece.thumbs, before.offset, after.offset).unwrap_or((piece.from + piece.to) / 2.0);
        for (from, to, offset) in [(piece.from, skip, before.offset), (skip, piece.to, after.offset)] {
            if let Some(reading) = copy.read_at(&leaked.shown(from..to), offset, None)? {
                observations.extend(reading.observations);
            }
        }
        said.push(format!("{:.1}-{:.1} s read at its neighbours' offsets, the skip taken at {skip:.1} s", piece.from, piece.to));
    }
    let note = format!("the leak skipped: read in pieces, each placed on its own: {}", said.join(", "));
    let offset = pieces.iter().find_map(|p| p.placed.as_ref()).map_or(0.0, |p| p.offset);
    Ok(Some(Found { offset, observations, note: Some(note) }))
}

/// A piece of the leak (its own seconds), its thumbs, and where it was placed when its marks
/// read there.
struct Piece {
    from: f64,
    to: f64,
    thumbs: Vec<Thumb>,
    placed: Option<Placed>,
}

/// Where in `leak` (thumbs of a piece read weakly between two placed at `before` and `after`)
/// the pictures stop matching the job at `before` and start matching it at `after`: the
/// time that splits them best. None when the pictures do not say.
fn skip_in(job: &[Thumb], rate: f64, leak: &[Thumb], before: f64, after: f64) -> Option<f64> {
    let (b, a) = (likeness_at(job, rate, leak, before), likeness_at(job, rate, leak, after));
    let prefers: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b.zip(*a).map_or(0.0, |(b, a)| f64::from(b - a))).collect();
    let total: f64 = prefers.iter().sum();
    // Splitting before thumb k: the thumbs before it for `before`, the rest for `after`.
    let mut before_sum = 0.0;
    let mut best: Option<(f64, usize)> = None;
    for k in 0..=prefers.len() {
        let score = before_sum - (total - before_sum);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, k));
        }
        before_sum += prefers.get(k).copied().unwrap_or(0.0);
    }
    let (score, k) = best?;
    (score > prefers.iter().map(|p| p.abs()).sum::<f64>() * 0.1).then(|| leak.get(k).map_or_else(|| leak.last().map_or(0.0, |t| t.time + 1e-3), |t| t.time))
}

/// Whether the leak's pictures part from the job's at `offset` for a good share of it
/// ([`UNLIKE_SHARE`] of its textured thumbs no more alike than [`UNLIKE`]): a skip, even
/// where the marks read clearly.
fn pictures_part(job: &[Thumb], rate: f64, leak: &[Thumb], offset: f64) -> bool {
    let likeness: Vec<f32> = likeness_at(job, rate, leak, offset).into_iter().flatten().collect();
    likeness.iter().filter(|&&l| l < UNLIKE).count() as f64 > UNLIKE_SHARE * likeness.len() as f64
}

/// `leak`'s thumbs shown from `from` to before `to`.
fn thumbs_in(leak: &[Thumb], from: f64, to: f64) -> Vec<Thumb> {
    leak.iter().filter(|t| (from..to).contains(&t.time)).cloned().collect()
}

/// The leak's pieces (its own seconds, from, to): as many of at least [`PIECE_SECONDS`] as
/// it holds, of equal length.
fn spans(leaked: &Frames) -> Vec<(f64, f64)> {
    let (Some(&first), Some(&last)) = (leaked.times.first(), leaked.times.last()) else { return Vec::new() };
    let count = ((last - first) / PIECE_SECONDS).floor().max(1.0) as usize;
    let length = (last - first) / count as f64;
    (0..count).map(|k| (first + k as f64 * length, if k + 1 == count { last + 1.0 } else { first + (k + 1) as f64 * length })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_media::forensic_mark::Luma;

    const RATE: f64 = 25.0;

    /// Thumbs of `seconds` of pictures that change all the time: frame `k` a 16x12 plane of
    /// its own (a 64-bit LCG's numbers), shown at `k / RATE` + `shift`, for frames from
    /// `first`.
    fn thumbs(first: usize, count: usize, shift: f64) -> Vec<Thumb> {
        (first..first + count)
            .map(|k| {
                let mut state = k as u64 + 1;
                let plane: Vec<u8> = (0..16 * 12)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (state >> 56) as u8
                    })
                    .collect();
                Thumb::new(Luma::packed(&plane, (16, 12)), k as f64 / RATE + shift)
            })
            .collect()
    }

    #[test]
    fn a_skip_is_found_where_the_pictures_stop_matching_one_offset_and_match_the_next() {
        let job = thumbs(0, 100 * 25, 0.0);
        // 20 s of leak: 8 s of the job from 30 s, then (a skip) 12 s from 70 s.
        let mut leak = thumbs(30 * 25, 8 * 25, -30.0);
        leak.extend(thumbs(70 * 25, 12 * 25, -62.0));
        let skip = skip_in(&job, RATE, &leak, 30.0, 62.0).expect("the pictures say where");
        assert!((skip - 8.0).abs() < 0.05, "{skip}");
        assert!(pictures_part(&job, RATE, &leak, 30.0) && pictures_part(&job, RATE, &leak, 62.0), "12 s and 8 s of 20 do not match");
        let continuous = thumbs(30 * 25, 20 * 25, -30.0);
        assert!(!pictures_part(&job, RATE, &continuous, 30.0));
        let end = skip_in(&job, RATE, &continuous, 30.0, 62.0).unwrap();
        assert!(end > continuous.last().unwrap().time, "all of it at the first offset: {end}");
    }

    fn leak_of(seconds: f64, rate: f64) -> Frames {
        let n = (seconds * rate).round() as usize;
        Frames { size: (2, 2), planes: (0..n).map(|i| vec![i as u8; 4]).collect(), times: (0..n).map(|i| i as f64 / rate).collect() }
    }

    #[test]
    fn a_leak_is_cut_into_equal_pieces_of_at_least_the_piece_length_covering_every_picture() {
        assert_eq!(spans(&leak_of(39.0, 30.0)).len(), 1, "under two pieces: read whole only");
        let leak = leak_of(65.0, 30.0);
        let spans = spans(&leak);
        assert_eq!(spans.len(), 3);
        let pieces: Vec<Frames> = spans.iter().map(|&(from, to)| leak.shown(from..to)).collect();
        assert_eq!(pieces.iter().map(Frames::len).sum::<usize>(), leak.len(), "every picture in one piece");
        for (k, p) in pieces.iter().enumerate() {
            let seconds = p.times.last().unwrap() - p.times[0];
            assert!((PIECE_SECONDS - 0.1..2.0 * PIECE_SECONDS).contains(&seconds), "piece {k}: {seconds} s");
            assert!(pieces.get(k + 1).is_none_or(|next| next.times[0] > *p.times.last().unwrap()), "pieces in order, apart");
        }
    }
}
