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

/// The command line of the S3 server that was stopped, to start the same one again (it may
/// have been started from another checkout, with its data elsewhere).
static STOPPED_S3: std::sync::Mutex<Option<Vec<String>>> = std::sync::Mutex::new(None);

/// Stops the test S3 server (SIGKILL to the SeaweedFS process listening on 8333) and waits
/// until its port is closed.
pub fn stop_s3() {
    let pids = Command::new("pgrep").args(["-f", "weed mini"]).output().unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout).lines().next().map(str::to_string).expect("no SeaweedFS process running");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    *STOPPED_S3.lock().unwrap() = Some(args);
    let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(status.success(), "could not stop SeaweedFS ({pid})");
    wait_closed(8333, "SeaweedFS");
}

/// Starts the S3 server stopped by [`stop_s3`] again, with the same command line.
pub fn start_s3() {
    let Some(args) = STOPPED_S3.lock().unwrap().take() else { return services("s3") };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(crate::fixtures::target_dir().join("weed-restarted.log"))
        .unwrap();
    // A server left running on its own (setsid), as services.sh starts it: not waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("setsid")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("restart SeaweedFS");
    let start = Instant::now();
    while !port_open(8333) {
        assert!(start.elapsed() < Duration::from_secs(60), "SeaweedFS did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops Swift's proxy (SIGKILL: the whole service is gone for its clients) and waits
/// until its port is closed. The account, container and object servers keep running.
/// The proxy is started again when the outage is dropped, by the test or by its panic (the
/// tests after it need Swift).
#[must_use = "Swift comes back when the outage is dropped"]
pub fn stop_swift() -> SwiftOutage {
    // The tempauth proxy only (its configuration `proxy-server.conf`): the Keystone proxy on
    // 8090 (`proxy-keystone.conf`) stays up, as starting Swift again would not start it.
    let status = Command::new("pkill").args(["-KILL", "-f", "swift-proxy-server .*/proxy-server.conf"]).status().unwrap();
    assert!(status.success(), "no Swift proxy was running");
    wait_closed(8089, "Swift's proxy");
    SwiftOutage
}

/// Swift's proxy stopped by [`stop_swift`]; started again when dropped.
pub struct SwiftOutage;

impl Drop for SwiftOutage {
    fn drop(&mut self) {
        // The services script starts what is not running.
        services("swift");
    }
}
