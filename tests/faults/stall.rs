//! Issue 14, defect 5, against the real services: a task whose frames stop advancing (its
//! storage stops answering mid-task) is stopped and handed back after `FARM_STALL_SECONDS`,
//! the worker's `/healthz` says it is stuck meanwhile, and the job still succeeds. Before,
//! progress reports kept such a task alive and `/healthz` said ok.

use std::time::{Duration, Instant};

use farm_tests::farm::{free_port, plain, Extra};
use farm_tests::services;

use super::{serial, wait_line, Case};

#[test]
fn a_task_whose_frames_stop_advancing_is_handed_back_while_healthz_says_stuck() {
    let _serial = serial();
    let mut case = Case::start("fault-stalled", 0, 60.0, Extra::default());
    let port = free_port();
    case.farm.add_worker(&[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}")), ("FARM_STALL_SECONDS", "3".into())]);
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started"], Duration::from_secs(60));
    services::stop_s3();
    let health = || reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).map(|r| (r.status().as_u16(), r.text().unwrap_or_default()));
    let started = Instant::now();
    let stuck = loop {
        match health() {
            Ok((503, text)) => break Some(text),
            _ if started.elapsed() > Duration::from_secs(30) => break None,
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    services::start_s3();
    let stuck = stuck.unwrap_or_else(|| panic!("/healthz never said stuck: {:?}\n{}", health(), case.farm.workers[0].log()));
    assert!(stuck.contains("has not advanced"), "{stuck}");
    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    let log = plain(&case.farm.workers[0].log());
    assert!(log.contains("task stalled"), "{log}");
    assert!(log.contains("task handed back for another try"), "{log}");
    assert_eq!(health().map(|(code, _)| code).ok(), Some(200), "healthy again once the task moves");
    case.assert_output_whole();
    case.cleanup();
}
