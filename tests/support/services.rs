//! Stopping and starting the real servers, for fault injection. Only the `faults` test
//! binary uses these; it runs its tests one at a time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

fn wait_closed(port: u16, what: &str) {
    let start = Instant::now();
    while port_open(port) {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} still answers on {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn services(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let status = Command::new(root.join("scripts/services.sh")).arg(name).status().expect("services.sh");
    assert!(status.success(), "could not start {name}");
}

/// Stops the RabbitMQ node (the Erlang VM exits) and waits until its port is closed.
pub fn stop_rabbitmq() {
    let out = Command::new("rabbitmqctl").arg("stop").output().expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl stop: {}", String::from_utf8_lossy(&out.stderr));
    wait_closed(5672, "RabbitMQ");
}

pub fn start_rabbitmq() {
    services("rabbitmq");
}

/// Stops the test S3 server (SIGKILL to SeaweedFS) and waits until its port is closed.
pub fn stop_s3() {
    let data = crate::fixtures::target_dir().join("seaweedfs/data");
    let status = Command::new("pkill").args(["-KILL", "-f", &format!("weed mini -dir={}", data.display())]).status().unwrap();
    assert!(status.success(), "no SeaweedFS process serving {}", data.display());
    wait_closed(8333, "SeaweedFS");
}

pub fn start_s3() {
    services("s3");
}
