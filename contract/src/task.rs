//! Task messages and the queue topology the coordinator and the workers share.
//!
//! A task names its job, its source and output locations, the ladder and which part of
//! the job it encodes. Messages carry a schema version; a worker refuses (dead-letters)
//! versions it does not know instead of guessing.

use serde::{Deserialize, Serialize};

use crate::ladder::Ladder;
use crate::review::Review;

/// 6: tasks of a forensic job carry its mark seed ([`MarkSeed`]): every video segment is
/// encoded as variant A and as variant B; without it, once, unmarked, as before.
/// 5: tasks of an encrypted job carry the content keys of the key periods their range
/// touches ([`TaskKeys`]); without them the output is written plain, as before.
/// 4: tasks carry the job's [`Review`] (colour, LUT, burn-ins, start timecode); earlier
/// tasks have none and render as before, so a job split before an upgrade stays alike.
/// 3: a video chunk encodes the audio of its range too (`audio` in [`TaskPart::Video`]);
/// jobs split before that have one audio task over the whole source, which workers still
/// run. 2: ladders have leading segments (`lead_segments`, default 3). A version 1
/// message's ladder has none, whatever it says: see [`TaskMessage::from_json`].
pub const TASK_SCHEMA: u32 = 6;

/// Object the coordinator writes under a job's output when the job is cancelled; workers
/// look for it before and while running a task of that job, and drop the task.
pub const CANCEL_MARKER: &str = "CANCELLED";

/// The cancel marker of one job: `CANCELLED.<job id>` beside its output. A marker names
/// its job, so a later job writing the same prefix is not stopped by an old cancellation.
pub fn cancel_marker(job_id: &str) -> String {
    format!("{CANCEL_MARKER}.{job_id}")
}

/// The claim of a task's latest attempt on the task's output, `parts/<task id>.claim`:
/// written by each attempt as it starts; an earlier attempt still running (a frozen worker
/// thawed, a lost link) has its writes refused from then on, and once the attempt wrote
/// everything it is marked done, so that a later delivery does not run the task again (the
/// worker's `fence`).
pub fn claim_key(task_id: &str) -> String {
    format!("parts/{task_id}.claim")
}

/// Marker a job's first chunk writes when it starts (with where it runs), so that later
/// chunks on the same CPUs can wait until the job is playable.
pub const FIRST_CHUNK_STARTED: &str = "parts/first-chunk.started";

/// Header names on dead letters: the reason, the job a task message belongs to, the
/// principal that sent a refused job request.
pub const HEADER_ERROR: &str = "x-farm-error";
pub const HEADER_JOB: &str = "x-farm-job";
pub const HEADER_PRINCIPAL: &str = "x-farm-principal";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMessage {
    pub schema: u32,
    pub job_id: String,
    pub task_id: String,
    /// `s3://bucket/key` or a path the worker can read.
    pub source: String,
    /// `s3://bucket/prefix` or a folder: where segments, parts and playlists go.
    pub output: String,
    pub ladder: Ladder,
    pub part: TaskPart,
    /// Absent before schema 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// The content keys this task encrypts its segments with; absent: written plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<TaskKeys>,
    /// A forensic job's mark seed; absent: no A and B, one unmarked encode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forensic_seed: Option<MarkSeed>,
}

/// The secret a forensic job's marks are keyed with: 32 bytes, 64 hex digits in the
/// message (signed tasks only). Its `Debug` shows nothing.
#[derive(Clone, PartialEq)]
pub struct MarkSeed(pub [u8; 32]);

impl std::fmt::Debug for MarkSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkSeed(..)")
    }
}

impl Serialize for MarkSeed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for MarkSeed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
        bytes.map(MarkSeed).ok_or_else(|| serde::de::Error::custom("a mark seed is 64 hex digits"))
    }
}

/// Content keys of an encrypted job, as far as one task needs them: the key period's
/// length in seconds of media, and the keys of the periods the task's range touches.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskKeys {
    pub period_seconds: u32,
    pub keys: Vec<PeriodKey>,
}

/// One period's AES-128 key, as 32 hex digits.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodKey {
    pub period: u32,
    pub key: String,
}

/// Keys never reach a log through `{:?}`.
impl std::fmt::Debug for TaskKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let periods: Vec<u32> = self.keys.iter().map(|k| k.period).collect();
        f.debug_struct("TaskKeys").field("period_seconds", &self.period_seconds).field("periods", &periods).finish_non_exhaustive()
    }
}

impl TaskMessage {
    /// Reads a message of this schema or an earlier one, so that the tasks of jobs in
    /// flight during an upgrade finish as they were split: schema 2 and 1 video chunks have
    /// no `audio` (their job has an audio task), and schema 1 ladders have no leading
    /// segments (its task cuts where the job's other tasks cut). Later versions are refused.
    pub fn from_json(data: &[u8]) -> Result<Self, String> {
        let mut task: TaskMessage = serde_json::from_slice(data).map_err(|e| format!("invalid task message: {e}"))?;
        match task.schema {
            TASK_SCHEMA | 5 | 4 | 3 | 2 => {}
            1 => task.ladder.lead_segments = 0,
            other => return Err(format!("task schema {other} is not supported (this worker reads 1 to {TASK_SCHEMA})")),
        }
        Ok(task)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskPart {
    /// Every rendition in one pass.
    Whole,
    /// Video renditions of `[start, end)` seconds (snapped to segment boundaries) and,
    /// with `audio`, the audio rendition's segments of the same range.
    Video {
        start: f64,
        end: Option<f64>,
        /// Absent in schema 2 and 1 messages: their jobs have an audio task.
        #[serde(default)]
        audio: bool,
    },
    /// The audio rendition over the whole source (jobs split before schema 3).
    Audio,
}

impl TaskPart {
    /// The part's `kind` as in the message: `whole`, `video` or `audio`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Whole => "whole",
            Self::Video { .. } => "video",
            Self::Audio => "audio",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Normal,
}

/// Runs of a task before a failure that may pass is taken as permanent: the worker on the
/// last attempt dead-letters the task with the reason. The task queues' `x-delivery-limit`
/// is one more, so the broker dead-letters only tasks whose worker died every time.
pub const MAX_ATTEMPTS: u32 = 3;

/// A task's progress or outcome, published on the events exchange as `task.<kind>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub job_id: String,
    pub task_id: String,
    pub kind: TaskEventKind,
    pub frames_done: u64,
    pub frames_total: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskEventKind {
    Started,
    Progress,
    /// A segment was written: live playlists can be extended now.
    Segment,
    Succeeded,
    Failed,
    Retrying,
}

impl TaskEventKind {
    pub fn routing_key(self) -> &'static str {
        match self {
            Self::Started => "task.started",
            Self::Progress => "task.progress",
            Self::Segment => "task.segment",
            Self::Succeeded => "task.succeeded",
            Self::Failed => "task.failed",
            Self::Retrying => "task.retrying",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_messages_round_trip_and_reject_unknown_fields() {
        let task = TaskMessage {
            schema: TASK_SCHEMA,
            job_id: "j1".into(),
            task_id: "j1-v0".into(),
            source: "s3://rushes/A001.mov".into(),
            output: "s3://review/j1".into(),
            ladder: Ladder::default(),
            part: TaskPart::Video { start: 0.0, end: Some(60.0), audio: true },
            review: None,
            keys: Some(TaskKeys { period_seconds: 600, keys: vec![PeriodKey { period: 0, key: "00112233445566778899aabbccddeeff".into() }] }),
            forensic_seed: Some(MarkSeed([0xab; 32])),
        };
        assert!(!format!("{task:?}").contains("0011223344"), "keys stay out of debug output");
        assert!(!format!("{task:?}").to_lowercase().contains("abab"), "the mark seed stays out of debug output");
        let text = serde_json::to_string(&task).unwrap();
        assert!(text.contains(r#""part":{"kind":"video","start":0.0,"end":60.0,"audio":true}"#), "{text}");
        for part in [TaskPart::Whole, TaskPart::Audio, task.part] {
            let json = serde_json::to_value(part).unwrap();
            assert_eq!(json["kind"], part.kind());
        }
        assert_eq!(serde_json::from_str::<TaskMessage>(&text).unwrap(), task);
        let extra = text.replacen("{", r#"{"colour":"red","#, 1);
        assert!(serde_json::from_str::<TaskMessage>(&extra).is_err());
        assert!(TaskMessage::from_json(extra.as_bytes()).unwrap_err().contains("colour"));
    }

    #[test]
    fn earlier_schemas_are_read_as_they_were_split_and_later_ones_are_refused() {
        let v1 = r#"{"schema":1,"job_id":"j","task_id":"j-1","source":"a.mov","output":"out",
            "ladder":{"video":[{"name":"360p","width":640,"height":360,"bitrate_kbps":800}]},
            "part":{"kind":"audio"}}"#;
        let task = TaskMessage::from_json(v1.as_bytes()).unwrap();
        assert_eq!(task.ladder.lead_segments, 0);
        let v2 = v1.replace(r#""schema":1"#, r#""schema":2"#);
        assert_eq!(TaskMessage::from_json(v2.as_bytes()).unwrap().ladder.lead_segments, 3);
        // a schema 2 chunk is video only: its job has an audio task
        let v2_chunk = v2.replace(r#"{"kind":"audio"}"#, r#"{"kind":"video","start":12.0,"end":null}"#);
        let chunk = TaskMessage::from_json(v2_chunk.as_bytes()).unwrap();
        assert_eq!(chunk.part, TaskPart::Video { start: 12.0, end: None, audio: false });
        let v3 = v1.replace(r#""schema":1"#, r#""schema":3"#);
        assert_eq!(TaskMessage::from_json(v3.as_bytes()).unwrap().review, None);
        let v4 = v1.replace(r#""schema":1"#, r#""schema":4"#);
        assert_eq!(TaskMessage::from_json(v4.as_bytes()).unwrap().keys, None, "schema 4 tasks write plain segments");
        let v5 = v1.replace(r#""schema":1"#, r#""schema":5"#);
        assert_eq!(TaskMessage::from_json(v5.as_bytes()).unwrap().forensic_seed, None, "schema 5 tasks are encoded once, unmarked");
        let v7 = v1.replace(r#""schema":1"#, r#""schema":7"#);
        assert!(TaskMessage::from_json(v7.as_bytes()).unwrap_err().contains("task schema 7 is not supported"));
    }

    #[test]
    fn a_mark_seed_is_64_hex_digits() {
        let v6 = |seed: &str| format!(r#"{{"schema":6,"job_id":"j","task_id":"j-1","source":"a.mov","output":"out","ladder":{{"video":[]}},"part":{{"kind":"whole"}},"forensic_seed":"{seed}"}}"#);
        let task = TaskMessage::from_json(v6(&"0f".repeat(32)).as_bytes()).unwrap();
        assert_eq!(task.forensic_seed, Some(MarkSeed([0x0f; 32])));
        for bad in ["0f".repeat(31), "zz".repeat(32), String::new()] {
            assert!(TaskMessage::from_json(v6(&bad).as_bytes()).unwrap_err().contains("64 hex digits"), "{bad}");
        }
    }
}
