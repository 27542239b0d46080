//! `lanmesh bench --quick --json` on a small subset: the output is one JSON array of
//! well-formed rows, and lanmesh loses nothing. No timing is asserted.

mod common;

use std::process::{Command, Stdio};

use common::proc::BIN;

#[test]
fn quick_json_rows_have_the_documented_shape() {
    let out = Command::new(BIN)
        .env("LANMESH_HOME", common::proc::test_home())
        .args([
            "bench",
            "--quick",
            "--json",
            "--only",
            "thr-64,rtt-64",
            "--systems",
            "lanmesh,lanmesh-aes,relay",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "bench failed: {:?}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON array ({e}): {stdout}"));
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for system in ["lanmesh", "lanmesh-aes", "relay"] {
        for test in ["thr-64", "rtt-64"] {
            let row = rows
                .iter()
                .find(|r| r["system"] == system && r["test"] == test)
                .unwrap_or_else(|| panic!("no {system} {test} row in {rows:#?}"));
            let sent = row["sent"].as_u64().expect("sent is a count");
            let delivered = row["delivered"].as_u64().expect("delivered is a count");
            assert!(sent > 0, "{row}");
            if system.starts_with("lanmesh") {
                assert_eq!(delivered, sent, "lanmesh lost messages: {row}");
            }
            if test.starts_with("thr") {
                assert!(row["msgs_per_s"].as_f64().unwrap() > 0.0, "{row}");
                assert!(row["mb_per_s"].as_f64().unwrap() > 0.0, "{row}");
                assert!(row.get("p50_us").is_none(), "{row}");
            } else {
                let (p50, p99) = (
                    row["p50_us"].as_f64().unwrap(),
                    row["p99_us"].as_f64().unwrap(),
                );
                assert!(0.0 < p50 && p50 <= p99, "{row}");
                assert!(row.get("mb_per_s").is_none(), "{row}");
            }
        }
    }
}
