//! Publishing: the playlists of a job whose parts are all in its output, master last.
//!
//! Takes a sink holding `parts/*.json` (of the named job only, when one is named: a prefix
//! used again may still hold parts an earlier job's last task wrote late); writes the VOD media, I-frame and master playlists
//! when the parts cover the whole job, and answers the master's key (or nothing yet).

use farm_contract::manifest::PartManifest;
use farm_storage::Sink;

use crate::playlist::{self, MASTER};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read or write {key}")]
    Storage {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot assemble playlists: {0}")]
    Assemble(String),
}

/// Writes the playlists if the parts in `sink` cover the whole job; returns the master's key.
pub fn publish(sink: &dyn Sink, job_id: Option<&str>) -> Result<Option<String>, PublishError> {
    let storage = |key: &str| {
        let key = key.to_string();
        move |source| PublishError::Storage { key, source }
    };
    let mut parts = Vec::new();
    for key in sink.list("parts/").map_err(storage("parts/"))? {
        if !key.ends_with(".json") {
            continue;
        }
        let data = sink.get(&key).map_err(storage(&key))?;
        let part: PartManifest =
            serde_json::from_slice(&data).map_err(|e| PublishError::Assemble(format!("{key}: {e}")))?;
        // Parts without a job id come from the one-shot command or from workers older than
        // job ids in manifests (tasks in flight during an upgrade).
        if job_id.is_none() || part.job_id.is_none() || part.job_id.as_deref() == job_id {
            parts.push(part);
        }
    }
    let Some(playlists) = playlist::assemble(&parts).map_err(PublishError::Assemble)? else {
        return Ok(None);
    };
    // The master goes last: a player that finds it finds every playlist it names.
    for (key, text) in &playlists.files {
        sink.put(key, text.as_bytes()).map_err(storage(key))?;
    }
    Ok(Some(MASTER.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::tests::{audio_part, video_part};
    use farm_storage::LocalDir;

    fn put(sink: &LocalDir, key: &str, mut part: PartManifest, job: Option<&str>) {
        part.job_id = job.map(str::to_owned);
        sink.put(key, &serde_json::to_vec(&part).unwrap()).unwrap();
    }

    /// Issue 14, defect 2: a prefix used again held an earlier job's parts, which were
    /// assembled with the new job's.
    #[test]
    fn only_the_named_jobs_parts_are_assembled() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::new(dir.path()).unwrap();
        put(&sink, "parts/video-000000-000005.json", video_part(0, 5, 60, true), Some("new"));
        put(&sink, "parts/audio-000000-000005.json", audio_part(5), Some("new"));
        // The earlier job was longer: its late part covers segments the new job has not.
        put(&sink, "parts/video-000005-000007.json", video_part(5, 7, 60, true), Some("old"));
        assert_eq!(publish(&sink, Some("new")).unwrap().as_deref(), Some(MASTER));
        let media = String::from_utf8(sink.get("720p/index.m3u8").unwrap()).unwrap();
        assert_eq!(media.matches("#EXTINF").count(), 5, "{media}");
        // What assembling every part (the old behaviour) makes of it: not the new job's 5.
        if publish(&sink, None).is_ok() {
            let mixed = String::from_utf8(sink.get("720p/index.m3u8").unwrap()).unwrap();
            assert_ne!(mixed.matches("#EXTINF").count(), 5, "{mixed}");
        }
    }
}
