//! Machine facts and process bookkeeping: CPU pinning, CPU time and memory of processes from
//! `/proc`, timer slack, signals.
use std::num::NonZeroU64;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal};
use rustix::thread::CpuSet;

/// Where servers and the client run.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// Servers are started under `taskset` and the client pins itself.
    pub enabled: bool,
    /// CPU for the cluster, nginx and the local-bound sender threads.
    pub server_cpu: usize,
    /// CPU for the bench client (HTTP client, local-bound reader threads).
    pub client_cpu: usize,
    /// Why pinning is off, or how it is set up.
    pub note: String,
}

impl Pinning {
    /// Pins servers to CPU0 and the client to CPU1 when `taskset` exists and there are two CPUs.
    pub fn detect(disabled: bool) -> Pinning {
        let cpus = online_cpus();
        let off = |note: String| Pinning {
            enabled: false,
            server_cpu: 0,
            client_cpu: 0,
            note,
        };
        if disabled {
            return off("pinning disabled by --no-pin".into());
        }
        if cpus < 2 {
            return off(format!("only {cpus} CPU online: running unpinned"));
        }
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !taskset {
            return off("taskset not found (util-linux): running unpinned".into());
        }
        Pinning {
            enabled: true,
            server_cpu: 0,
            client_cpu: 1,
            note: "cluster + nginx + local-bound senders on CPU0, bench client on CPU1".into(),
        }
    }

    /// A command that runs `program` on the server CPU (through `taskset` when pinning).
    pub fn server_command(&self, program: &Path) -> Command {
        if self.enabled {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(self.server_cpu.to_string()).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Pins the calling thread (and threads it spawns later) to the client CPU.
    pub fn pin_client_thread(&self) -> Result<()> {
        if self.enabled {
            pin_current_thread(self.client_cpu)?;
        }
        Ok(())
    }

    /// Pins the calling thread to the server CPU.
    pub fn pin_server_thread(&self) -> Result<()> {
        if self.enabled {
            pin_current_thread(self.server_cpu)?;
        }
        Ok(())
    }
}

fn pin_current_thread(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).with_context(|| format!("pin thread to CPU{cpu}"))
}

/// Number of online CPUs (not limited by this process's affinity).
pub fn online_cpus() -> usize {
    let Ok(text) = std::fs::read_to_string("/sys/devices/system/cpu/online") else {
        return std::thread::available_parallelism().map_or(1, |n| n.get());
    };
    text.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// Asks the kernel to wake this thread's sleeps with 1 ns of slack (default is 50 µs).
pub fn set_min_timer_slack() -> Result<()> {
    rustix::thread::set_current_timer_slack(NonZeroU64::new(1)).context("set timer slack")
}

/// Clock ticks per second of `/proc/*/stat` CPU times.
pub fn ticks_per_sec() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// Converts clock ticks to microseconds.
pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / ticks_per_sec() as f64
}

/// Fields of a `/proc/.../stat` line after the `(comm)` field (index 0 = state).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let close = text.rfind(')')?;
    Some(text[close + 1..].split_whitespace().collect())
}

/// utime + stime (clock ticks) from a stat file; for a process this includes exited threads.
fn stat_cpu_ticks(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let fields = stat_fields(&text).with_context(|| format!("parse {path}"))?;
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

/// CPU ticks used so far by process `pid` (all its threads, live and exited).
pub fn process_cpu_ticks(pid: u32) -> Result<u64> {
    stat_cpu_ticks(&format!("/proc/{pid}/stat"))
}

/// Sum of [`process_cpu_ticks`] over `pids`; a process that is gone counts 0.
pub fn total_cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&pid| process_cpu_ticks(pid).unwrap_or(0))
        .sum()
}

/// CPU ticks used by this process.
pub fn self_cpu_ticks() -> u64 {
    stat_cpu_ticks("/proc/self/stat").unwrap_or(0)
}

/// CPU ticks used by the calling thread.
pub fn thread_cpu_ticks() -> u64 {
    stat_cpu_ticks("/proc/thread-self/stat").unwrap_or(0)
}

/// A `VmXxx:` value of `/proc/<pid>/status` in bytes.
pub fn vm_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resets the peak RSS (`VmHWM`) of `pid` to its current RSS.
pub fn reset_peak_rss(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("reset VmHWM of pid {pid}"))
}

/// Child processes of `parent`, found by scanning `/proc`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|text| {
                    stat_fields(&text).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                })
                == Some(parent)
        })
        .collect()
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) -> Result<()> {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        bail!("bad pid {pid}");
    };
    rustix::process::kill_process(pid, Signal::TERM).context("send SIGTERM")
}

/// Kernel release string.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Total memory in bytes.
pub fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line["MemTotal:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Output of a command's first line (stdout or stderr), if it runs.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_comm_with_spaces() {
        let line = "123 (a b) c) S 1 2 3 4 5 6 7 8 9 10 22 33 0 0";
        let f = stat_fields(line).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "1");
        assert_eq!(f[11], "22");
        assert_eq!(f[12], "33");
    }

    #[test]
    fn own_process_is_visible() {
        let pid = std::process::id();
        assert!(vm_bytes(pid, "VmRSS").unwrap() > 0);
        let _ = process_cpu_ticks(pid).unwrap();
        assert!(online_cpus() >= 1);
    }
}
