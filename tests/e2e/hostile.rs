//! Hostile or broken input fails fast, with a one-line error naming the problem: every
//! file of the corpus (`farm_tests::corpus`), through the worker's command line. The same
//! corpus goes through a serving worker and the API in the `faults` tests.

use std::path::Path;
use std::time::Duration;

use farm_tests::corpus::corpus;
use farm_tests::fixtures::small_ladder_file;
use farm_tests::worker::transcode;

/// Runs the worker on `source`; the failure, if it is not the expected one.
fn check(source: &Path, expected: &str) -> Option<String> {
    let out = tempfile::tempdir().unwrap();
    let run = transcode(source, out.path(), &small_ladder_file(), &[]).unwrap();
    let stderr = run.stderr();
    if run.output.status.success() {
        return Some("was accepted".into());
    }
    if stderr.contains("panicked") {
        return Some(format!("panicked: {stderr}"));
    }
    let Some(line) = stderr.lines().find(|l| l.starts_with("error: ")) else {
        return Some(format!("no error line in {stderr}"));
    };
    if !line.contains(expected) {
        return Some(format!("{line:?} does not say {expected:?}"));
    }
    if run.elapsed > Duration::from_secs(30) {
        return Some(format!("took {:?}", run.elapsed));
    }
    if out.path().join("index.m3u8").exists() {
        return Some("left a master playlist".into());
    }
    None
}

#[test]
fn every_file_of_the_hostile_corpus_fails_fast_with_a_message_naming_the_problem() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "{} files", corpus.len());
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(|h| check(&h.path, h.expected).map(|why| format!("{} ({}): {why}", h.name, h.path.display())))
        .collect();
    assert!(failures.is_empty(), "{} of {} hostile files:\n{}", failures.len(), corpus.len(), failures.join("\n"));
}

#[test]
fn missing_file() {
    assert_eq!(check(Path::new("/nonexistent/clip.mov"), "source /nonexistent/clip.mov does not exist"), None);
}
