//! Cutting a job into chunk tasks: video ranges of about `chunk_seconds` on segment
//! boundaries, plus one audio task when the source has audio. The audio task comes first:
//! it writes its first segment within seconds, and the job is playable as soon as every
//! rendition, audio included, has its first segment.

use farm_shared::ladder::Ladder;
use farm_shared::task::TaskPart;

/// Tasks for a source of `duration` seconds. Chunks are whole numbers of segments; the
/// last chunk runs to the end of the source whatever its length.
pub fn plan(duration: f64, has_audio: bool, ladder: &Ladder, chunk_seconds: f64) -> Vec<TaskPart> {
    let segment = ladder.segment_seconds;
    let per_chunk = (chunk_seconds / segment).round().max(1.0);
    let chunk = per_chunk * segment;
    let segments = (duration / segment).ceil().max(1.0);
    let chunks = (segments / per_chunk).ceil().max(1.0) as u64;
    let audio = has_audio.then_some(TaskPart::Audio);
    let video = (0..chunks).map(|i| {
        let start = i as f64 * chunk;
        let end = (i + 1 < chunks).then(|| (i + 1) as f64 * chunk);
        TaskPart::Video { start, end }
    });
    audio.into_iter().chain(video).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(parts: &[TaskPart]) -> Vec<(f64, Option<f64>)> {
        parts
            .iter()
            .filter_map(|p| match p {
                TaskPart::Video { start, end } => Some((*start, *end)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_short_source_is_one_task_plus_audio() {
        let parts = plan(20.0, true, &Ladder::default(), 60.0);
        assert_eq!(starts(&parts), vec![(0.0, None)]);
        assert_eq!(parts.first(), Some(&TaskPart::Audio));
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn chunks_fall_on_segment_boundaries_and_the_last_runs_to_the_end() {
        let parts = plan(150.0, false, &Ladder::default(), 60.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(60.0)), (60.0, Some(120.0)), (120.0, None)]);
        // 10 s chunks with 6 s segments round to 12 s
        let parts = plan(30.0, false, &Ladder::default(), 10.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(12.0)), (12.0, Some(24.0)), (24.0, None)]);
        // no empty last chunk when the duration is a whole number of chunks
        let parts = plan(120.0, false, &Ladder::default(), 60.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(60.0)), (60.0, None)]);
    }
}
