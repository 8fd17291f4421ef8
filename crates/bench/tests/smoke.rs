//! Smoke test: the benchmark runs end to end on tiny data (`--quick`) against a debug moss
//! cluster, and every cell fetches something and verifies it. It asserts nothing about speed.
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// The moss binary cargo built next to this package's binary (`<target>/<profile>/moss`).
fn moss_bin() -> Option<PathBuf> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_moss-bench"));
    let moss = bench.parent()?.join("moss");
    moss.is_file().then_some(moss)
}

fn cell<'a>(doc: &'a Value, group: &str, id: &str) -> &'a Value {
    doc["cells"]
        .as_array()
        .expect("cells array")
        .iter()
        .find(|c| c["group"] == group && c["id"] == id)
        .unwrap_or_else(|| panic!("cell {group}/{id} missing"))
}

/// The moss binary; a missing one fails the test (it must not pass untested).
fn moss() -> PathBuf {
    moss_bin().unwrap_or_else(|| {
        panic!(
            "no moss binary next to {}; run `cargo build --workspace` first",
            env!("CARGO_BIN_EXE_moss-bench")
        )
    })
}

#[test]
fn quick_jobs_run_times_and_verifies_every_job() {
    let moss = moss();
    let out = std::env::temp_dir().join(format!("moss-bench-jobs-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_moss-bench"))
        .args(["--jobs", "--quick", "--job-objects", "300", "--moss-bin"])
        .arg(&moss)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run moss-bench --jobs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "moss-bench --jobs failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    for cell in ["J1", "J2", "J3", "J4", "J5"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(cell))
            .unwrap_or_else(|| panic!("{cell} missing:\n{stdout}"));
        assert!(line.contains(" 300 "), "{line}");
    }
    let saved = std::fs::read_to_string(out.join("jobs.txt")).expect("jobs.txt");
    assert_eq!(saved, stdout);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn quick_run_verifies_every_cell() {
    let moss = moss();
    let out = std::env::temp_dir().join(format!("moss-bench-smoke-{}", std::process::id()));
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_moss-bench"))
        .arg("--quick")
        .arg("--no-nginx")
        .arg("--moss-bin")
        .arg(&moss)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run moss-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "moss-bench failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    eprintln!("quick run took {:.1} s", started.elapsed().as_secs_f64());

    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc["all_verified"], true);
    for c in doc["cells"].as_array().expect("cells") {
        let name = format!("{}/{}", c["group"], c["id"]);
        assert_eq!(c["verified"], true, "{name} not verified: {c}");
        assert_eq!(c["errors"], 0, "{name}");
        assert!(
            c["obj_per_s"]["median"].as_f64().unwrap_or(0.0) > 0.0,
            "{name} has zero throughput"
        );
    }
    for size in ["10k", "100k", "1m"] {
        for id in [
            "L1", "L1z", "L4", "R1", "R1z", "A1", "A2", "G1", "G2", "D1", "P1", "P2",
        ] {
            let c = cell(&doc, size, id);
            assert_eq!(c["runs"].as_array().map(Vec::len), Some(3), "{size}/{id}");
        }
        // The DT topology's floor is computed from the local and relay bounds.
        let srv = &doc["sizes"][size]["srv_cpu_us_per_obj"];
        for floor in ["topology_floor_copies", "topology_floor_zero_copy"] {
            assert!(
                srv[floor].as_f64().unwrap_or(0.0) > 0.0,
                "{size} {floor}: {srv}"
            );
        }
    }
    cell(&doc, "10k", "A3");
    for id in ["S1c", "S1", "S2", "S3"] {
        cell(&doc, "shards-1m", id);
    }
    for id in ["S1c", "S1"] {
        cell(&doc, "shards-10m", id);
    }
    // Checksums were sampled somewhere in every kind of cell.
    let checked: u64 = doc["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["checksums_verified"].as_u64().unwrap_or(0))
        .sum();
    assert!(checked > 0);
    // The P cells injected and logged their delay.
    let p2 = cell(&doc, "10k", "P2");
    assert!(p2["delay"]["mean_us"].as_f64().unwrap_or(0.0) >= 100.0);
    for side in ["getbatch", "get_k16"] {
        let l = &doc["latency"][side];
        assert!(
            l["batches"].as_u64().unwrap_or(0) > 0,
            "latency {side}: {l}"
        );
        assert_eq!(l["errors"], 0);
    }
    assert!(doc["memory"]["sample"]["objects"].as_u64().unwrap_or(0) > 0);
    assert!(doc["memory"]["max_peak_rss"].as_u64().unwrap_or(0) > 0);
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(9));
    assert!(doc["env"]["kernel"].is_string());
    assert!(stdout.contains("SPEC §5 targets"));
    let _ = std::fs::remove_dir_all(&out);
}
