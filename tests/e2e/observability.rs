//! The Grafana dashboard and the alert rules against a real Prometheus: after a real run,
//! every PromQL expression of every dashboard panel returns data; the alert rules pass
//! `promtool check rules` and their unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use farm_tests::amqp::broker;
use farm_tests::farm::{free_port, Farm, Proc};
use farm_tests::fixtures::{make, SMALL_LADDER};
use farm_tests::s3::{s3, unique_prefix, BUCKET};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("charts/hls-farm")
}

/// Every `expr` of every panel target in the dashboard.
fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(chart().join("dashboards/farm-overview.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push((panel["title"].as_str().unwrap().to_string(), target["expr"].as_str().unwrap().to_string()));
        }
    }
    exprs
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = chart().join("alerts");
    for args in [&["check", "rules", "rules.yaml"][..], &["test", "rules", "rules.test.yaml"][..]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool (Debian package prometheus)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

#[test]
fn every_dashboard_panel_returns_data_from_a_real_prometheus_after_a_real_run() {
    let exprs = dashboard_expressions();
    assert!(exprs.len() >= 15, "{} expressions", exprs.len());
    let source = make(
        "observability-8s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=8",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap();
    let prefix = unique_prefix("observability");
    let queue_prefix = prefix.replace('/', "-");
    s3().put_file(&format!("{prefix}/in.mov"), &source).unwrap();
    let db = tempfile::tempdir().unwrap();
    let url = farm_tests::farm::sqlite_url(db.path());
    let mut farm = Farm::start_with(&url, &queue_prefix, 0, 6.0, farm_tests::farm::Extra::rabbitmq_management());
    let worker_ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    for port in &worker_ports {
        farm.add_worker(&[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}"))]);
    }

    // A real Prometheus scraping the coordinator and both workers every second.
    let prom_dir = tempfile::tempdir().unwrap();
    let coordinator = farm.base.trim_start_matches("http://").to_string();
    let workers: Vec<String> = worker_ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: farm-coordinator\n    static_configs:\n      - targets: ['{coordinator}']\n  - job_name: farm-workers\n    static_configs:\n      - targets: [{}]\n",
        workers.join(", ")
    );
    std::fs::write(prom_dir.path().join("prometheus.yml"), config).unwrap();
    let prom_port = free_port();
    let prometheus = Proc::spawn(
        PathBuf::from("prometheus"),
        &[
            &format!("--config.file={}", prom_dir.path().join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", prom_dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &[],
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let http = reqwest::blocking::Client::new();
    let start = Instant::now();
    while http.get(format!("{prom}/-/ready")).send().map_or(true, |r| !r.status().is_success()) {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus not ready:\n{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every target scraped at least twice before any work, so that rates see it all.
    let query = |q: &str| -> serde_json::Value {
        http.get(format!("{prom}/api/v1/query")).query(&[("query", q)]).send().unwrap().json().unwrap()
    };
    let start = Instant::now();
    while query("count(count_over_time(up[1m]) >= 2)")["data"]["result"][0]["value"][1] != "3" {
        assert!(start.elapsed() < Duration::from_secs(30), "targets not scraped: {}", query("up"));
        std::thread::sleep(Duration::from_millis(250));
    }

    // A few real jobs.
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let body = serde_json::json!({
                "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
                "output": format!("s3://{BUCKET}/{prefix}/out-{i}"),
                "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
            });
            let (status, job) = farm.submit(&body.to_string());
            assert_eq!(status, 201, "{job}");
            job["id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in &ids {
        assert_eq!(farm.wait_final(id, Duration::from_secs(240))["state"], "succeeded");
    }
    std::thread::sleep(Duration::from_secs(5)); // a few scrapes after the last job

    let mut failures = Vec::new();
    for (title, expr) in &exprs {
        let reply = query(expr);
        if reply["status"] != "success" {
            failures.push(format!("{title}: {expr}: {reply}"));
            continue;
        }
        let series = reply["data"]["result"].as_array().cloned().unwrap_or_default();
        let finite = series.iter().any(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite));
        if !finite {
            failures.push(format!("{title}: {expr}: no series with a value ({} series)", series.len()));
        }
    }
    assert!(failures.is_empty(), "{} of {} expressions:\n{}", failures.len(), exprs.len(), failures.join("\n"));
    drop(prometheus);
    broker().delete_farm_queues(&queue_prefix);
}
