//! Issue 18, against the real RabbitMQ: job requests published over AMQP around a broker
//! restart (some taken, some in the middle of being accepted, some queued, some published
//! after) each make exactly one job, and every one of those jobs completes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use farm_queue::Topology;
use farm_tests::amqp::{broker, is_bound, Broker};
use farm_tests::farm::{new_token, plain, psql, Extra, POSTGRES};
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, BUCKET};
use farm_tests::services;

use super::{serial, wait_line, Case, FRAMES};

fn wait_bound(b: &Broker, topology: &Topology, case: &Case) {
    let bound = b.wait_for(Duration::from_secs(60), || is_bound(&topology.submit_queue(), &topology.jobs_exchange()));
    assert!(bound, "no job request queue: {}", case.farm.coordinator.log());
}

#[test]
fn job_requests_published_around_a_broker_restart_each_make_one_job() {
    let _serial = serial();
    let principals = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(principals.path(), format!("[{}]", new_token("guest", "ingest").1)).unwrap();
    // Once in CI every task of the job accepted just before the restart succeeded and its
    // reports never reached the coordinator (cause not found): with a 30 s stall time such
    // a job is finished from its parts in storage (lost_reports.rs) within the wait below.
    let coordinator = vec![("FARM_PRINCIPALS_FILE", principals.path().display().to_string()), ("FARM_TASK_STALL_SECONDS", "30".to_string())];
    let extra = Extra { coordinator, ..Default::default() };
    let case = Case::start("fault-submit", 2, 6.0, extra);
    let topology = Topology::new(&case.farm.prefix);
    let key = |n: usize| format!("{}-{n}", case.farm.prefix);
    let request = |n: usize| {
        let body = serde_json::json!({
            "source": format!("s3://{BUCKET}/{}/in.mov", case.prefix),
            "output": format!("s3://{BUCKET}/{}/out-{n}", case.prefix),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
            "idempotency_key": key(n),
        });
        body.to_string().into_bytes()
    };
    let b = broker();
    wait_bound(&b, &topology, &case);
    for n in 0..3 {
        b.publish_request(&topology.jobs_exchange(), &request(n), Some("guest"), None, &key(n)).unwrap();
    }
    // The broker goes away once the coordinator has accepted a job: the others are being
    // accepted or still queued.
    wait_line(&case.farm.coordinator, &["job accepted"], Duration::from_secs(60));
    services::stop_rabbitmq();
    services::start_rabbitmq();
    let b = broker();
    wait_bound(&b, &topology, &case);
    for n in 3..5 {
        b.publish_request(&topology.jobs_exchange(), &request(n), Some("guest"), None, &key(n)).unwrap();
    }

    // Every request made one job: this farm's jobs (by their outputs; the faults suite
    // shares one database) by idempotency key, until all five are there. A request caught
    // between its job's row and its tasks' confirms by the outage was answered 503, its job
    // failed with nothing accepted and its key released; its next delivery made the job.
    let start = Instant::now();
    let (by_key, unaccepted) = loop {
        let sql = format!("SELECT coalesce(idempotency_key, ''), id, coalesce(error, '') FROM jobs WHERE output LIKE 's3://{BUCKET}/{}/%' ORDER BY id", case.prefix);
        let rows = psql(POSTGRES, &sql);
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unaccepted = Vec::new();
        for row in rows.lines().map(|l| l.splitn(3, '|').collect::<Vec<_>>()) {
            match row[0] {
                "" => unaccepted.push(row[2].to_string()),
                k => by_key.entry(k.to_string()).or_default().push(row[1].to_string()),
            }
        }
        if by_key.len() == 5 || start.elapsed() > Duration::from_secs(180) {
            break (by_key, unaccepted);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(by_key.keys().cloned().collect::<Vec<_>>(), (0..5).map(key).collect::<Vec<_>>(), "{}", case.farm.coordinator.log());
    assert!(unaccepted.iter().all(|e| e.contains("nothing was accepted") || e.contains("did not take the job's tasks")), "{unaccepted:?}");
    for (n, (k, ids)) in by_key.iter().enumerate() {
        assert_eq!(ids.len(), 1, "key {k} made {ids:?}");
        let done = case.wait_final(&ids[0], Duration::from_secs(300));
        assert_eq!(done["state"], "succeeded", "{done}\n{}", case.farm.coordinator.log());
        let local = tempfile::tempdir().unwrap();
        s3().download(&format!("{}/out-{n}", case.prefix), local.path()).unwrap();
        check_ladder(local.path(), FRAMES, 25.0, true).unwrap();
    }
    let log = plain(&case.farm.coordinator.log());
    assert!(log.contains("job request stream lost") && log.matches("taking job requests over AMQP").count() >= 2, "{log}");
    assert_eq!(b.depth(&topology.submit_queue()).unwrap(), 0, "requests left over");
    assert_eq!(b.depth(&topology.jobs_dead_queue()).unwrap(), 0, "requests refused");
    case.cleanup();
}
