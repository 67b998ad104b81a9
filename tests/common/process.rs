//! The operator binary as a separate process (for what only a process shows: signals, flags,
//! exit codes, its HTTP endpoints).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `tfjob-operator run` with `args`, as the cluster's audited operator user, its endpoints on
/// free loopback ports.
pub struct OperatorProcess {
    pub child: Child,
    port: u16,
}

impl OperatorProcess {
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tfjob-operator"))
            .arg("run")
            .args(["--metrics-bind-address", &format!("127.0.0.1:{port}")])
            .args(["--health-probe-bind-address", "127.0.0.1:0"])
            .args(args)
            .env("KUBECONFIG", dir.join("operator.kubeconfig"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("operator started");
        Self { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `-TERM`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// `path` of the metrics endpoint: status code and body (a blocking loopback request).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        conn.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        let code = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        Some((code, body.to_string()))
    }

    /// The value of the sample whose line starts with `series` (name and labels) in
    /// `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.get("/readyz").await.map(|(code, _)| code) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "operator {} never ready",
                self.pid()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The endpoint flags, on free loopback ports unless `args` sets them.
fn loopback_addresses(args: &[&str]) -> Vec<&'static str> {
    ["--metrics-bind-address", "--health-probe-bind-address"]
        .into_iter()
        .filter(|flag| !args.contains(flag))
        .flat_map(|flag| [flag, "127.0.0.1:0"])
        .collect()
}

/// Runs `tfjob-operator run ARGS` to its end with `kubeconfig` (at most 30 s): what it printed
/// and its exit status. Endpoints ARGS does not place go to free loopback ports.
pub fn run_to_exit(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfjob-operator"))
        .arg("run")
        .args(loopback_addresses(args))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("operator started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
