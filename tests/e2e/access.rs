//! Named principals, roles and the audit trail (issue 16) on PostgreSQL, RabbitMQ and S3:
//! every role allowed and refused on every route (jobs, audit, keys, media, shares), who did what recorded with the caller's
//! name and address, and `coordinator audit verify` passing on the untouched trail and
//! failing, naming the row, after an UPDATE or a DELETE made behind the coordinator's back.
//! With a master key, an accepted job has one wrapped content key per key period.

use std::process::Command;

use farm_tests::farm::psql;
use farm_tests::farm::{new_token, Farm};
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::worker::coordinator_bin;
use reqwest::blocking::Client;

use farm_tests::farm::POSTGRES_SERVER as SERVER;

/// A database of its own, so that tampering with its trail touches no other test.
fn fresh_database(prefix: &str) -> String {
    let name = format!("farm_{}", prefix.replace(['/', '-'], "_"));
    psql(&format!("{SERVER}/postgres"), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql(&format!("{SERVER}/postgres"), &format!("CREATE DATABASE {name}"));
    format!("{SERVER}/{name}")
}

fn verify(url: &str) -> (Option<i32>, String) {
    let out = Command::new(coordinator_bin()).args(["audit", "verify"]).env("DATABASE_URL", url).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn roles_are_enforced_on_every_route_and_the_audit_trail_shows_tampering() {
    let prefix = unique_prefix("access");
    let database = fresh_database(&prefix);
    s3().put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let people = [("ingest-bot", "ingest"), ("eve@studio", "producer"), ("ops", "admin")];
    let tokens: Vec<(String, String)> = people.iter().map(|(n, r)| new_token(n, r)).collect();
    let file = dir.path().join("principals.json");
    std::fs::write(&file, format!("[{}]", tokens.iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join(",\n"))).unwrap();

    let master = dir.path().join("master.key");
    std::fs::write(&master, format!("{}\n", "5e".repeat(32))).unwrap();
    // No workers: the job stays queued, so the admin can cancel it. Keys rotate every
    // 10 s of media: the 30 s clip has three.
    let coordinator = vec![
        ("FARM_PRINCIPALS_FILE", file.display().to_string()),
        ("FARM_MASTER_KEY_FILE", master.display().to_string()),
        ("FARM_KEY_PERIOD_SECONDS", "10".to_string()),
    ];
    let extra = farm_tests::farm::Extra { coordinator, ..Default::default() };
    let farm = Farm::start_with(&database, &prefix.replace('/', "-"), 0, 4.0, extra);
    let http = Client::new();
    let call = |token: Option<&str>, method: &str, path: &str, body: Option<String>| -> (u16, serde_json::Value) {
        let mut r = http.request(method.parse().unwrap(), format!("{}{path}", farm.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(serde_json::Value::Null))
    };
    let job_body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out/"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    })
    .to_string();
    let (code, job) = call(Some(&tokens[0].0), "POST", "/v1/jobs", Some(job_body));
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let wrapped = psql(&database, &format!("SELECT period || ' ' || wrapped FROM content_keys WHERE job_id = '{id}' ORDER BY period"));
    let wrapped: Vec<&str> = wrapped.lines().collect();
    assert_eq!(wrapped.iter().map(|l| l.split(' ').next().unwrap()).collect::<Vec<_>>(), ["0", "1", "2"], "{wrapped:?}");
    assert!(wrapped.iter().all(|l| l.split(' ').nth(1).unwrap().starts_with("v1:")), "{wrapped:?}");
    assert!(!farm.coordinator.log().contains(&"5e".repeat(32)), "the master key is never logged");

    // The matrix: (method, path, least role) for every guarded route; a role below is
    // refused with 403, at or above gets through (whatever the route then answers).
    let routes = [
        ("POST", "/v1/jobs".to_string(), 0, Some("{}".to_string())),
        ("GET", "/v1/jobs".to_string(), 0, None),
        ("GET", format!("/v1/jobs/{id}"), 0, None),
        ("GET", "/openapi.json".to_string(), 0, None),
        ("GET", "/v1/audit".to_string(), 2, None),
        ("DELETE", "/v1/jobs/no-such-job".to_string(), 2, None),
        ("GET", format!("/v1/jobs/{id}/keys/0"), 1, None),
        ("GET", format!("/v1/jobs/{id}/media/index.m3u8"), 1, None),
        ("GET", format!("/v1/jobs/{id}/shares"), 1, None),
        ("POST", format!("/v1/jobs/{id}/shares"), 1, Some(r#"{"viewer": "director", "expires_in": 600}"#.to_string())),
        ("DELETE", "/v1/shares/no-such-share".to_string(), 1, None),
    ];
    for (method, path, least, body) in &routes {
        for (rank, (name, _)) in people.iter().enumerate() {
            let (code, answer) = call(Some(&tokens[rank].0), method, path, body.clone());
            if rank < *least {
                assert_eq!(code, 403, "{name} {method} {path}: {answer}");
            } else {
                assert!(code != 401 && code != 403, "{name} {method} {path}: {code} {answer}");
            }
        }
        assert_eq!(call(None, method, path, body.clone()).0, 401, "no token: {method} {path}");
        assert_eq!(call(Some("not-a-token-of-anyone"), method, path, body.clone()).0, 401, "bad token: {method} {path}");
    }
    // Open routes stay open.
    assert_eq!(call(None, "GET", "/healthz", None).0, 200);
    let (code, cancelled) = call(Some(&tokens[2].0), "DELETE", &format!("/v1/jobs/{id}"), None);
    assert_eq!(code, 200, "{cancelled}");

    // Who did what, from where.
    let (code, rows) = call(Some(&tokens[2].0), "GET", &format!("/v1/audit?job={id}"), None);
    assert_eq!(code, 200, "{rows}");
    let seen: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap().into(), r["principal"].as_str().unwrap().into(), r["address"].as_str().unwrap().into()))
        .collect();
    let row = |action: &str, who: &str| (action.to_string(), who.to_string(), "127.0.0.1".to_string());
    let expected = [
        row("job.submitted", "ingest-bot"),
        row("key.fetched", "eve@studio"),
        row("key.fetched", "ops"),
        row("share.created", "eve@studio"),
        row("share.created", "ops"),
        row("job.cancelled", "ops"),
    ];
    assert_eq!(seen, expected);
    let (_, denied) = call(Some(&tokens[2].0), "GET", "/v1/audit?principal=ingest-bot", None);
    let denied: Vec<&str> = denied.as_array().unwrap().iter().filter(|r| r["action"] == "request.denied").map(|r| r["detail"].as_str().unwrap()).collect();
    assert!(denied.iter().any(|d| d.starts_with("GET /v1/audit: the ingest role may not")), "{denied:?}");
    let (_, anonymous) = call(Some(&tokens[2].0), "GET", "/v1/audit?principal=-", None);
    assert!(anonymous.as_array().unwrap().len() >= 2 * routes.len(), "every 401 is recorded: {anonymous}");

    // The trail verifies; an edited row, then a deleted one, are found and named.
    let (code, said) = verify(&database);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("intact"), "{said}");
    let rows: i64 = psql(&database, "SELECT count(*) FROM audit").parse().unwrap();
    assert!(rows > 10, "{rows} rows");
    let original = psql(&database, "SELECT principal FROM audit WHERE seq = 3");
    psql(&database, "UPDATE audit SET principal = 'someone-else' WHERE seq = 3");
    let (code, said) = verify(&database);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("row 3") && said.contains("edited"), "{said}");
    psql(&database, &format!("UPDATE audit SET principal = '{original}' WHERE seq = 3"));
    assert_eq!(verify(&database).0, Some(0), "the row put back as it was");
    psql(&database, "DELETE FROM audit WHERE seq = 5");
    let (code, said) = verify(&database);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("row 5 is missing"), "{said}");
    drop(farm);
    psql(&format!("{SERVER}/postgres"), &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.rsplit('/').next().unwrap()));
}
