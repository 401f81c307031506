//! Publishing: the playlists of a job whose parts are all in its output, master last.
//!
//! Takes a sink holding `parts/*.json`; writes the VOD media, I-frame and master playlists
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
pub fn publish(sink: &dyn Sink) -> Result<Option<String>, PublishError> {
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
        parts.push(part);
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
