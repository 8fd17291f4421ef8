//! Nodes as separate `moss` processes, for tests that kill, stop and restart them.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999 by default), apart from
/// the benchmark's servers (20000–32000) and clear of Azurite's default ports (10000–10002).
const TEST_PORTS: std::ops::Range<u16> = 11_000..20_000;

/// A loopback port free now, for a node started as a process (which binds it a little later).
/// Not from the ephemeral range, so that no outgoing connection or `:0` listener takes it in
/// between; and never handed out twice by this test process, whose tests run side by side.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let span = TEST_PORTS.end - TEST_PORTS.start;
    // A random start (`RandomState`'s keys are random), so parallel test processes spread out.
    let random = std::collections::hash_map::RandomState::new().hash_one(());
    let first = (random % u64::from(span)) as u16;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for k in 0..span {
        let port = TEST_PORTS.start + (first + k) % span;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// TLS files for nodes started as processes: one self-signed certificate for `localhost` and
/// `127.0.0.1` that every node serves and trusts (it is its own CA).
#[derive(Debug, Clone)]
pub struct TestTls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TestTls {
    /// Makes (or reuses) `dir/cert.pem` and `dir/key.pem`.
    pub fn generate(dir: &Path) -> TestTls {
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        let identity = moss_server::tls::ensure_self_signed(dir, &hosts).unwrap();
        TestTls {
            cert: identity.cert,
            key: identity.key,
        }
    }

    /// The flags that make a node serve with this certificate and trust it in its peers.
    fn args(&self) -> Vec<String> {
        let cert = self.cert.display().to_string();
        vec![
            "--tls-cert".to_string(),
            cert.clone(),
            "--tls-key".to_string(),
            self.key.display().to_string(),
            "--tls-ca".to_string(),
            cert,
        ]
    }
}

/// One `moss proxy` or `moss target` process.
pub struct ProcessNode {
    pub child: Option<Child>,
    pub url: String,
    pub log: std::path::PathBuf,
}

impl ProcessNode {
    /// Starts `moss proxy` on `port` with state in `dir`.
    pub fn proxy(bin: &Path, port: u16, dir: &Path) -> ProcessNode {
        Self::proxy_with(bin, port, dir, None)
    }

    /// [`ProcessNode::proxy`], serving HTTPS with `tls` when given.
    pub fn proxy_with(bin: &Path, port: u16, dir: &Path, tls: Option<&TestTls>) -> ProcessNode {
        let mut args = vec![
            "proxy".to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--data".to_string(),
            dir.display().to_string(),
        ];
        args.extend(tls.map(TestTls::args).unwrap_or_default());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn(bin, &args, port, dir, tls.is_some())
    }

    /// Starts `moss target` on `port` joining `proxy_url`, with data in `dir` and the cluster
    /// secret from `secret` (the proxy's `cluster.secret`; `None` starts a target without one).
    pub fn target(
        bin: &Path,
        port: u16,
        proxy_url: &str,
        dir: &Path,
        secret: Option<&Path>,
    ) -> ProcessNode {
        Self::target_with(bin, port, proxy_url, dir, secret, None)
    }

    /// [`ProcessNode::target`], serving HTTPS with `tls` (and trusting it in the proxy) when given.
    pub fn target_with(
        bin: &Path,
        port: u16,
        proxy_url: &str,
        dir: &Path,
        secret: Option<&Path>,
        tls: Option<&TestTls>,
    ) -> ProcessNode {
        let mut args = vec![
            "target".to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--proxy".to_string(),
            proxy_url.to_string(),
            "--data".to_string(),
            dir.display().to_string(),
        ];
        if let Some(secret) = secret {
            args.push("--cluster-secret-file".to_string());
            args.push(secret.display().to_string());
        }
        args.extend(tls.map(TestTls::args).unwrap_or_default());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn(bin, &args, port, dir, tls.is_some())
    }

    fn spawn(bin: &Path, args: &[&str], port: u16, dir: &Path, https: bool) -> ProcessNode {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let node = ProcessNode {
            child: Some(child),
            url: format!(
                "{}://127.0.0.1:{port}",
                if https { "https" } else { "http" }
            ),
            log,
        };
        node.wait_listening(Duration::from_secs(20));
        node
    }

    fn wait_listening(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr = self.addr();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start; log:\n{}",
                self.url,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>` of this node.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no cleanup, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, `INT`). `STOP` returns once every thread of the
    /// process has stopped: `kill` returns when the signal is queued, and until one thread takes
    /// it and stops the others, they go on serving requests (a busy machine makes that window
    /// milliseconds long).
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            if name == "STOP" {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !all_threads_stopped(child.id()) {
                    assert!(Instant::now() < deadline, "{} did not stop", self.url);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// SIGINT and wait for a clean exit.
    pub fn stop(&mut self) {
        self.signal("INT");
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines from a child's stdout until one contains `needle` (for `moss local`).
#[allow(dead_code)]
pub fn wait_for_line(child: &mut Child, needle: &str, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&needle) {
                let _ = tx.send(line);
                return;
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

/// Whether every thread of process `pid` is stopped by a signal (state `T` in
/// `/proc/<pid>/task/<tid>/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ...`: the state follows the last `)` (comm may contain one).
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `signal("STOP")` returns with every thread stopped; a process asleep in a system call is
    /// not taken for stopped, nor one that does not exist.
    #[test]
    fn stop_returns_once_the_process_has_stopped() {
        let mut node = ProcessNode {
            child: Some(Command::new("sleep").arg("30").spawn().unwrap()),
            url: "sleep".to_string(),
            log: std::path::PathBuf::new(),
        };
        let pid = node.child.as_ref().unwrap().id();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!all_threads_stopped(pid), "asleep, not stopped");
        node.signal("STOP");
        assert!(all_threads_stopped(pid));
        node.signal("CONT");
        node.kill();
        assert!(!all_threads_stopped(pid), "gone");
    }

    /// Ports for parallel tests' nodes: each free, none twice, none the kernel would pick for an
    /// outgoing connection.
    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..64).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32_768);
        assert!(
            ports.iter().all(|&p| p < ephemeral_low),
            "{ports:?} vs {ephemeral_low}"
        );
        for port in ports {
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}
