//! Cutting a job into chunk tasks: ranges of about `chunk_seconds` on segment boundaries.
//! Each chunk encodes every rendition of its range, the audio's segments included (with a
//! few AAC frames of overlap so that the joins are not heard: see the worker's
//! `transcode::audio`), so a chunk reads its stretch of the original once and the first
//! chunk alone makes the job playable.
//!
//! The last full chunk is cut in two halves: a job ends when its last chunk does, and with
//! equal chunks on several workers one worker often runs the last chunk alone while the
//! others idle (5 equal chunks on 2 workers: one does 3). Halves at the tail let the
//! workers finish closer together (60 s in 12 s chunks: 12, 12, 12, 12, 6, 6).

use farm_contract::ladder::Ladder;
use farm_contract::task::{TaskMessage, TaskPart, TASK_SCHEMA};

use crate::db::{Job, Task};
use crate::keys::JobKeys;

/// The message of a stored task, to hand it out again (its job's ladder is stored as JSON).
pub fn stored_message(job: &Job, task: &Task, keys: Option<&JobKeys>) -> serde_json::Result<Vec<u8>> {
    let stored: serde_json::Value = serde_json::from_str(&job.ladder)?;
    // Stored before ladders had leading segments: the job's grid has none.
    let before_leads = stored.get("lead_segments").is_none();
    let mut ladder: Ladder = serde_json::from_value(stored)?;
    if before_leads {
        ladder.lead_segments = 0;
    }
    serde_json::to_vec(&message(job, task, &ladder, keys))
}

/// The message that hands `task` of `job` to a worker.
pub fn message(job: &Job, task: &Task, ladder: &Ladder, keys: Option<&JobKeys>) -> TaskMessage {
    TaskMessage {
        schema: TASK_SCHEMA,
        job_id: job.id.clone(),
        task_id: task.id.clone(),
        source: job.source.clone(),
        output: job.output.clone(),
        ladder: ladder.clone(),
        part: task.part,
        // Stored as the coordinator wrote it; a job from before review settings has none.
        review: job.review.as_deref().and_then(|r| serde_json::from_str(r).ok()),
        keys: keys.map(|k| k.for_part(&task.part)),
        // A watermarked job is encrypted: it has keys whenever the master key is there.
        forensic_seed: keys.filter(|_| job.forensic_watermark).map(|k| k.mark_seed.clone()),
    }
}

/// Tasks for a source of `duration` seconds. Chunks are whole numbers of segments; the
/// last chunk runs to the end of the source whatever its length. Chunk `i` ends at the
/// segment boundary nearest `i x chunk`, where `chunk` is `chunk_seconds` rounded to whole
/// segments (the short leading segments, when the ladder has them, fall inside the first).
pub fn plan(duration: f64, has_audio: bool, ladder: &Ladder, chunk_seconds: f64) -> Vec<TaskPart> {
    let cuts = ladder.cuts();
    let segment = ladder.segment_seconds;
    let chunk = (chunk_seconds / segment).round().max(1.0) * segment;
    let segments = cuts.count_in(duration);
    // Chunk boundaries as segment indices; the last full chunk (not the only one) is halved.
    let mut bounds: Vec<u64> = vec![0];
    for i in 1.. {
        let k = cuts.nearest_boundary(f64::from(i) * chunk);
        if k >= segments {
            break;
        }
        if k > *bounds.last().unwrap() {
            bounds.push(k);
        }
    }
    let seconds = |k: u64| cuts.start_ms(k) as f64 / 1000.0;
    if bounds.len() >= 2 {
        let end_of = |i: usize| bounds.get(i + 1).copied().unwrap_or(segments);
        let whole = |i: usize| seconds(end_of(i)) - seconds(bounds[i]) >= chunk - 1e-9;
        if let Some(i) = (1..bounds.len()).rev().find(|&i| whole(i)) {
            let (start, end) = (bounds[i], end_of(i));
            let middle = cuts.nearest_boundary((seconds(start) + seconds(end)) / 2.0);
            if middle > start && middle < end {
                bounds.insert(i + 1, middle);
            }
        }
    }
    bounds
        .iter()
        .enumerate()
        .map(|(i, &first)| TaskPart::Video {
            start: seconds(first),
            end: bounds.get(i + 1).map(|&next| seconds(next)),
            audio: has_audio,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(parts: &[TaskPart]) -> Vec<(f64, Option<f64>)> {
        parts
            .iter()
            .filter_map(|p| match p {
                TaskPart::Video { start, end, .. } => Some((*start, *end)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_short_source_is_one_task_and_chunks_carry_the_audio() {
        let parts = plan(20.0, true, &Ladder::default(), 60.0);
        assert_eq!(parts, vec![TaskPart::Video { start: 0.0, end: None, audio: true }]);
        let parts = plan(150.0, true, &Ladder::default(), 60.0);
        assert!(parts.len() > 1 && parts.iter().all(|p| matches!(p, TaskPart::Video { audio: true, .. })));
        assert!(plan(150.0, false, &Ladder::default(), 60.0).iter().all(|p| matches!(p, TaskPart::Video { audio: false, .. })));
    }

    #[test]
    fn chunks_fall_on_segment_boundaries_and_the_last_runs_to_the_end() {
        // 150 s: 60 + 60 + 30, and the last full chunk (the second) is halved
        let parts = plan(150.0, false, &Ladder::default(), 60.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(60.0)), (60.0, Some(90.0)), (90.0, Some(120.0)), (120.0, None)]);
        // 10 s chunks with 6 s segments round to 12 s; 30 s is 5 segments: 12 + 12 + 6
        let parts = plan(30.0, false, &Ladder::default(), 10.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(12.0)), (12.0, Some(18.0)), (18.0, Some(24.0)), (24.0, None)]);
        // no empty last chunk when the duration is a whole number of chunks
        let parts = plan(120.0, false, &Ladder::default(), 60.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(60.0)), (60.0, Some(90.0)), (90.0, None)]);
    }

    #[test]
    fn the_tail_is_halved_so_two_workers_share_five_chunks_evenly() {
        let parts = plan(60.0, true, &Ladder::default(), 12.0);
        let lengths: Vec<f64> = starts(&parts).iter().map(|(s, e)| e.unwrap_or(60.0) - s).collect();
        assert_eq!(lengths, vec![12.0, 12.0, 12.0, 12.0, 6.0, 6.0]);
        // a chunk of one segment cannot be halved
        let parts = plan(18.0, false, &Ladder::default(), 6.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(6.0)), (6.0, Some(12.0)), (12.0, None)]);
    }

    #[test]
    fn leading_segments_stay_inside_the_first_chunk() {
        let mut ladder = Ladder { lead_segments: 3, lead_seconds: 2.0, ..Ladder::default() };
        let parts = plan(60.0, false, &ladder, 12.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(12.0)), (12.0, Some(24.0)), (24.0, Some(36.0)), (36.0, Some(48.0)), (48.0, Some(54.0)), (54.0, None)]);
        // leads that end off the even grid: boundaries 0, 5, 10, 16, 22, ...; chunks end at the nearest
        ladder.lead_seconds = 5.0;
        ladder.lead_segments = 2;
        let parts = plan(40.0, false, &ladder, 12.0);
        assert_eq!(starts(&parts), vec![(0.0, Some(10.0)), (10.0, Some(22.0)), (22.0, Some(28.0)), (28.0, Some(34.0)), (34.0, None)]);
        // a source inside the leading segments is one task
        assert_eq!(starts(&plan(3.0, true, &ladder, 12.0)), vec![(0.0, None)]);
    }

    fn job(ladder: &str) -> Job {
        use crate::db::State;
        use farm_contract::task::Priority;
        Job {
            id: "j".into(),
            state: State::Running,
            source: "s3://rushes/a.mov".into(),
            output: "s3://review/j".into(),
            priority: Priority::Normal,
            ladder: ladder.into(),
            idempotency_key: None,
            error: None,
            master_playlist: None,
            plan: None,
            review: None,
            forensic_watermark: false,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn a_job_stored_before_leading_segments_is_handed_out_without_them() {
        use crate::db::State;
        let task = Task { id: "j-1".into(), job_id: "j".into(), part: TaskPart::Audio, state: State::Queued, frames_done: 0, frames_total: None, error: None };
        let sent = |ladder: &str| -> TaskMessage { serde_json::from_slice(&stored_message(&job(ladder), &task, None).unwrap()).unwrap() };
        let old = r#"{"video":[{"name":"360p","width":640,"height":360,"bitrate_kbps":800}]}"#;
        assert_eq!(sent(old).ladder.lead_segments, 0);
        assert_eq!(sent(&serde_json::to_string(&Ladder::default()).unwrap()).ladder.lead_segments, 3);
    }

    #[test]
    fn only_a_watermarked_jobs_tasks_carry_its_mark_seed() {
        use crate::db::State;
        let master = crate::keys::MasterKey::from_bytes(&[7; 32]);
        let keys = crate::keys::for_new_job(&master, "j", 30.0, 10).unwrap().plain.unwrap();
        let task = Task { id: "j-1".into(), job_id: "j".into(), part: TaskPart::Whole, state: State::Queued, frames_done: 0, frames_total: None, error: None };
        let ladder = serde_json::to_string(&Ladder::default()).unwrap();
        let sent = |job: &Job, keys| -> TaskMessage { serde_json::from_slice(&stored_message(job, &task, keys).unwrap()).unwrap() };
        let marked = Job { forensic_watermark: true, ..job(&ladder) };
        assert_eq!(sent(&marked, Some(&keys)).forensic_seed, Some(master.mark_seed("j")));
        assert_eq!(sent(&job(&ladder), Some(&keys)).forensic_seed, None, "not asked for");
        assert_eq!(sent(&marked, None).forensic_seed, None, "no master key: nothing to derive it from");
    }
}
