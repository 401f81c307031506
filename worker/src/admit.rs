//! What a worker accepts from the queue: signed task messages, for allowed locations.
//!
//! Takes a message's bytes and its signature header; hands on a [`TaskMessage`] the
//! worker may run, or the reason it is dead-lettered. The worker does not trust the
//! broker: whoever can publish there could otherwise make it read any object and write
//! anywhere. Tasks from the embedded farm's in-process queue come from the coordinator in
//! the same process and carry no signature.

use farm_contract::signature::TaskKey;
use farm_contract::task::TaskMessage;
use farm_storage::{AllowList, Location};

/// What the worker checks before running a task.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// The coordinator's task key; `None` only for the in-process queue.
    pub key: Option<TaskKey>,
    pub sources: AllowList,
    pub outputs: AllowList,
}

impl Admission {
    /// The task in `data`, if its signature holds (when one is required), it parses, and
    /// its source and output lie inside the allow-lists.
    pub fn admit(&self, data: &[u8], signature: Option<&str>, signed: bool) -> Result<TaskMessage, String> {
        if signed {
            let key = self.key.as_ref().ok_or("this worker has no task key to verify tasks with")?;
            key.verify(data, signature).map_err(|e| e.to_string())?;
        }
        let task = TaskMessage::from_json(data)?;
        task.ladder.validate().map_err(|e| format!("invalid ladder: {e}"))?;
        let source = Location::parse(&task.source).map_err(|e| format!("source: {e}"))?;
        let output = Location::parse(&task.output).map_err(|e| format!("output: {e}"))?;
        self.sources.check("source", &source).map_err(|e| e.to_string())?;
        self.outputs.check("output", &output).map_err(|e| e.to_string())?;
        if let Some(lut) = task.review.as_ref().and_then(|r| r.lut.as_ref()) {
            // A LUT is read like a source, so it must lie where sources may.
            let lut = Location::parse(&lut.location).map_err(|e| format!("LUT: {e}"))?;
            self.sources.check("LUT", &lut).map_err(|e| e.to_string())?;
        }
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = r#"{"schema":3,"job_id":"j1","task_id":"j1-0000","source":"s3://rushes/a.mov","output":"s3://review/j1","ladder":{"version":1,"video":[{"name":"360p","width":640,"height":360,"bitrate_kbps":800}]},"part":{"kind":"whole"}}"#;

    fn admission() -> Admission {
        Admission {
            key: Some(TaskKey::new(&"k".repeat(32)).unwrap()),
            sources: AllowList::parse(&["s3://rushes".into()]).unwrap(),
            outputs: AllowList::parse(&["s3://review".into()]).unwrap(),
        }
    }

    /// Issue 14, defect 3: workers ran any task anyone published to the broker.
    #[test]
    fn unsigned_altered_or_misdirected_tasks_are_refused() {
        let a = admission();
        let sig = a.key.as_ref().unwrap().sign(TASK.as_bytes());
        assert!(a.admit(TASK.as_bytes(), Some(&sig), true).is_ok());
        assert!(a.admit(TASK.as_bytes(), None, true).unwrap_err().contains("no signature"));
        let altered = TASK.replace("s3://rushes/a.mov", "s3://rushes/b.mov");
        assert!(a.admit(altered.as_bytes(), Some(&sig), true).unwrap_err().contains("does not match"));
        // Signed, but outside the worker's own allow-lists.
        let elsewhere = TASK.replace("s3://review/j1", "s3://finance/j1");
        let sig = a.key.as_ref().unwrap().sign(elsewhere.as_bytes());
        assert!(a.admit(elsewhere.as_bytes(), Some(&sig), true).unwrap_err().contains("not inside an allowed location"));
        // The in-process queue's tasks need no signature.
        assert!(a.admit(TASK.as_bytes(), None, false).is_ok());
    }
}
