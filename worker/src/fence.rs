//! A task's claim on its output: the attempt that started last owns the task's writes, and
//! a task done is not run again.
//!
//! The coordinator hands a task out again when its worker stops reporting (a frozen
//! process, a link lost in a way the broker has not noticed), and the broker redelivers one
//! whose worker's channel died. The earlier worker may still be alive, or be thawed later,
//! and carry on writing, even after the job has finished. So each attempt writes a claim of
//! its own under the output as it starts ([`claim_key`]), and [`Fence`] checks before each
//! write that the claim is still this attempt's: when a later attempt has claimed the task,
//! or the claim is gone (the output was removed), the write is refused, and every one after
//! it, and the task ends as superseded. An attempt that wrote everything marks its claim
//! done ([`Fence::finish`]); a later delivery of the task (its acknowledgement or its
//! report was lost) finds it so and does not run it again ([`Claim::Done`]).
//!
//! Not closed: an attempt frozen between its check and the write it allows, or between
//! taking the task and writing its claim, writes once more (docs/faults.md).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use farm_contract::task::claim_key;
use farm_storage::Sink;

/// How a finished attempt's claim starts; the attempt's token follows.
const DONE: &[u8] = b"done by ";

/// What an attempt finds when it claims its task.
pub enum Claim {
    /// The task is this attempt's: it writes through the fence.
    Taken(Fence),
    /// An earlier attempt (`by`) wrote everything the task writes.
    Done { by: String },
}

/// A task's sink that writes only while the task's claim is this attempt's.
pub struct Fence {
    inner: Box<dyn Sink>,
    key: String,
    token: Vec<u8>,
    superseded: Arc<AtomicBool>,
}

impl Fence {
    /// Claims `task_id`'s output for this attempt (replacing an unfinished earlier
    /// attempt's claim); `superseded` is set once a later attempt's claim refuses a write.
    pub fn claim(inner: Box<dyn Sink>, task_id: &str, superseded: Arc<AtomicBool>) -> io::Result<Claim> {
        let key = claim_key(task_id);
        if let Some(by) = inner.get_if_any(&key)?.as_deref().and_then(|found| found.strip_prefix(DONE)) {
            return Ok(Claim::Done { by: String::from_utf8_lossy(by).into_owned() });
        }
        let mut random = [0u8; 16];
        getrandom::getrandom(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let token = format!("{} pid {} {}", crate::hold::Placement::here().host, std::process::id(), hex::encode(random)).into_bytes();
        inner.put(&key, &token)?;
        Ok(Claim::Taken(Self { inner, key, token, superseded }))
    }

    /// The claim's key, for messages.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Marks the task done, once everything it writes is written.
    pub fn finish(&self) -> io::Result<()> {
        self.put(&self.key, &[DONE, &self.token].concat())
    }

    fn check(&self) -> io::Result<()> {
        if !self.superseded.load(Ordering::SeqCst) {
            let holder = match self.inner.get_if_any(&self.key)? {
                Some(found) if found == self.token => return Ok(()),
                Some(found) => String::from_utf8_lossy(&found).into_owned(),
                None => "nobody (the claim is gone)".into(),
            };
            self.superseded.store(true, Ordering::SeqCst);
            tracing::warn!(claim = %self.inner.locate(&self.key), %holder, "a later attempt holds this task: its writes are refused");
        }
        Err(io::Error::other(Superseded))
    }
}
/// The error of a write refused because a later attempt holds the task.
#[derive(Debug, thiserror::Error)]
#[error("a later attempt of this task holds its output")]
pub struct Superseded;

impl Sink for Fence {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.put(key, data)
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        self.inner.get(key)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.check()?;
        self.inner.delete(key)
    }

    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }

    fn signed_url(&self, key: &str, ttl: std::time::Duration) -> io::Result<Option<String>> {
        self.inner.signed_url(key, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_storage::LocalDir;

    fn claim(dir: &std::path::Path) -> (Claim, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Fence::claim(Box::new(LocalDir::new(dir).unwrap()), "job-0001", flag.clone()).unwrap(), flag)
    }

    fn fence(dir: &std::path::Path) -> (Fence, Arc<AtomicBool>) {
        match claim(dir) {
            (Claim::Taken(fence), flag) => (fence, flag),
            (Claim::Done { by }, _) => panic!("done by {by}"),
        }
    }

    #[test]
    fn the_attempt_that_claimed_last_writes_and_the_earlier_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, first_superseded) = fence(dir.path());
        first.put("720p/seg_00000.ts", b"first").unwrap();
        let (second, _) = fence(dir.path());
        let refused = first.put("720p/seg_00001.ts", b"first").unwrap_err();
        assert!(refused.get_ref().is_some_and(|e| e.is::<Superseded>()), "{refused}");
        assert!(first_superseded.load(Ordering::SeqCst));
        assert!(first.delete("720p/seg_00000.ts").is_err());
        second.put("720p/seg_00001.ts", b"second").unwrap();
        let plain = LocalDir::new(dir.path()).unwrap();
        assert_eq!(plain.get("720p/seg_00000.ts").unwrap(), b"first");
        assert_eq!(plain.get("720p/seg_00001.ts").unwrap(), b"second");
        // Reads are not fenced.
        assert_eq!(first.get("720p/seg_00001.ts").unwrap(), b"second");
    }

    #[test]
    fn a_claim_that_is_gone_refuses_writes_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (attempt, superseded) = fence(dir.path());
        LocalDir::new(dir.path()).unwrap().delete(attempt.key()).unwrap();
        assert!(attempt.put("720p/seg_00000.ts", b"late").is_err());
        assert!(superseded.load(Ordering::SeqCst));
        // Refused for good, even were the claim to come back.
        LocalDir::new(dir.path()).unwrap().put(attempt.key(), &attempt.token).unwrap();
        assert!(attempt.put("720p/seg_00000.ts", b"late").is_err());
        assert!(LocalDir::new(dir.path()).unwrap().get("720p/seg_00000.ts").is_err());
    }

    #[test]
    fn a_task_finished_is_not_taken_again_and_an_earlier_attempt_stays_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (earlier, earlier_superseded) = fence(dir.path());
        let (last, _) = fence(dir.path());
        last.put("720p/seg_00000.ts", b"last").unwrap();
        last.finish().unwrap();
        match claim(dir.path()).0 {
            Claim::Done { by } => assert_eq!(by.as_bytes(), last.token),
            Claim::Taken(_) => panic!("a finished task was taken again"),
        }
        assert!(earlier.put("720p/seg_00000.ts", b"earlier").is_err());
        assert!(earlier_superseded.load(Ordering::SeqCst));
        assert_eq!(LocalDir::new(dir.path()).unwrap().get("720p/seg_00000.ts").unwrap(), b"last");
    }
}
