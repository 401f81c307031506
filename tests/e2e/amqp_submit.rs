//! Jobs submitted over AMQP on the real RabbitMQ: a request published to `{prefix}.jobs`
//! is answered (reply-to and events) and its job completes; the same idempotency key sent
//! twice makes one job; malformed and refused requests are dead-lettered with the reason.

use std::time::Duration;

use farm_queue::Topology;
use farm_tests::amqp::{broker, is_bound, Broker};
use farm_tests::farm::{new_token, sqlite_url, Extra, Farm};
use farm_tests::fixtures::{Kind, SMALL_LADDER};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, unique_prefix, BUCKET};

/// A farm whose principals file names `guest` (the test broker's user) as an ingest
/// principal, with the 8 s ProRes source uploaded.
struct Submitting {
    farm: Farm,
    topology: Topology,
    prefix: String,
    _principals: tempfile::NamedTempFile,
    _db: tempfile::TempDir,
}

impl Submitting {
    fn start(name: &str, b: &Broker) -> Self {
        let prefix = unique_prefix(name);
        s3().put_file(&format!("{prefix}/in.mov"), &Kind::ProRes422.make().unwrap()).unwrap();
        let principals = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(principals.path(), format!("[{}]", new_token("guest", "ingest").1)).unwrap();
        let extra = Extra { coordinator: vec![("FARM_PRINCIPALS_FILE", principals.path().display().to_string())], ..Default::default() };
        let db = tempfile::tempdir().unwrap();
        let farm = Farm::start_with(&sqlite_url(db.path()), &prefix.replace('/', "-"), 1, 6.0, extra);
        let topology = Topology::new(&farm.prefix);
        let bound = b.wait_for(Duration::from_secs(30), || is_bound(&topology.submit_queue(), &topology.jobs_exchange()));
        assert!(bound, "the coordinator declared no job request queue: {}", farm.coordinator.log());
        Self { farm, topology, prefix, _principals: principals, _db: db }
    }

    fn request(&self, key: Option<&str>, output: &str) -> Vec<u8> {
        let mut body = serde_json::json!({
            "source": format!("s3://{BUCKET}/{}/in.mov", self.prefix),
            "output": format!("s3://{BUCKET}/{}/{output}", self.prefix),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        });
        if let Some(key) = key {
            body["idempotency_key"] = key.into();
        }
        body.to_string().into_bytes()
    }
}

#[test]
fn a_published_job_request_is_answered_and_completes_and_a_repeat_makes_no_second_job() {
    let b = broker();
    let f = Submitting::start("amqp-submit", &b);
    let replies = b.listen(None);
    let events = b.listen(Some((&f.topology.events_exchange(), "submission.*")));
    let request = f.request(Some("ingest-A001"), "out");
    b.publish_request(&f.topology.jobs_exchange(), &request, Some("guest"), Some(&replies), "c-1").unwrap();
    let wait = Duration::from_secs(60);
    let (first, _) = b.next_json(&replies, wait).unwrap_or_else(|| panic!("no answer: {}", f.farm.coordinator.log()));
    assert_eq!((first["status"].as_u64(), first["correlation_id"].as_str()), (Some(201), Some("c-1")), "{first}");
    let id = first["job_id"].as_str().unwrap().to_string();
    assert_eq!(first["job"]["idempotency_key"], "ingest-A001", "{first}");

    // The same request again (a publisher that did not see the confirm sends it again).
    b.publish_request(&f.topology.jobs_exchange(), &request, Some("guest"), Some(&replies), "c-2").unwrap();
    let (second, _) = b.next_json(&replies, wait).expect("an answer to the repeat");
    assert_eq!((second["status"].as_u64(), second["job_id"].as_str()), (Some(200), Some(id.as_str())), "{second}");
    // Both answered on the events exchange too.
    let accepted: Vec<u64> = (0..2).filter_map(|_| b.next_json(&events, wait)).map(|(e, _)| e["status"].as_u64().unwrap()).collect();
    assert_eq!(accepted, [201, 200]);

    let listed: serde_json::Value = f.farm.http.get(format!("{}/v1/jobs", f.farm.base)).send().unwrap().json().unwrap();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1), "one job for one key: {listed}");
    // The principal the broker vouched for is the one on the audit trail.
    let audit: serde_json::Value = f.farm.http.get(format!("{}/v1/audit?job={id}", f.farm.base)).send().unwrap().json().unwrap();
    let submitted = audit.as_array().unwrap().iter().find(|r| r["action"] == "job.submitted").cloned();
    assert_eq!(submitted.as_ref().map(|r| (&r["principal"], &r["address"])), Some((&"guest".into(), &"amqp".into())), "{audit}");

    let done = f.farm.wait_final(&id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded", "{done}");
    let local = tempfile::tempdir().unwrap();
    s3().download(&format!("{}/out", f.prefix), local.path()).unwrap();
    check_ladder(local.path(), 200, 25.0, true).unwrap();
    b.delete_farm_queues(&f.farm.prefix);
}

#[test]
fn malformed_or_refused_job_requests_are_dead_lettered_with_the_reason() {
    let b = broker();
    let f = Submitting::start("amqp-refuse", &b);
    let replies = b.listen(None);
    let jobs = f.topology.jobs_exchange();
    let outside = serde_json::json!({"source": "s3://elsewhere/x.mov", "output": format!("s3://{BUCKET}/{}/o", f.prefix), "idempotency_key": "k-out"}).to_string();
    let cases: [(&[u8], Option<&str>, u64, &str); 4] = [
        (b"{not json", Some("guest"), 400, "invalid job request"),
        (&f.request(None, "no-key"), Some("guest"), 400, "idempotency_key is required"),
        (&f.request(Some("k-anon"), "anon"), None, 401, "no user_id"),
        (outside.as_bytes(), Some("guest"), 403, "not inside an allowed location"),
    ];
    let wait = Duration::from_secs(60);
    for (n, (body, user, status, reason)) in cases.iter().enumerate() {
        let correlation = format!("bad-{n}");
        b.publish_request(&jobs, body, *user, Some(&replies), &correlation).unwrap();
        let (answer, _) = b.next_json(&replies, wait).unwrap_or_else(|| panic!("no answer to case {n}: {}", f.farm.coordinator.log()));
        assert_eq!((answer["status"].as_u64(), answer["correlation_id"].as_str()), (Some(*status), Some(correlation.as_str())), "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(reason), "{answer}");
        let (copy, headers) = b.next_json(&f.topology.jobs_dead_queue(), wait).expect("a dead letter");
        assert!(headers.contains(&format!("x-farm-error={}", answer["error"].as_str().unwrap())), "{headers}");
        assert!(headers.contains(&format!("x-farm-principal={}", user.unwrap_or("-"))), "{headers}");
        assert_eq!(copy, serde_json::from_slice::<serde_json::Value>(body).unwrap_or_else(|_| String::from_utf8_lossy(body).into()));
    }
    // Nothing was made, and the tasks' dead letters (which fail jobs) got none of these.
    let listed: serde_json::Value = f.farm.http.get(format!("{}/v1/jobs", f.farm.base)).send().unwrap().json().unwrap();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(0), "{listed}");
    assert_eq!(b.depth(&f.topology.dead_queue()).unwrap(), 0);
    assert_eq!(b.depth(&f.topology.submit_queue()).unwrap(), 0);
    b.delete_farm_queues(&f.farm.prefix);
}
