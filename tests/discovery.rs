//! Discovery end to end, on a LAN of network namespaces this test builds itself: the
//! `lanmesh` binary runs inside the namespaces, so no multicast reaches a real interface.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{Host, Lan};
use common::proc::Proc;

/// Starts `lanmesh router ARGS` in `host` and waits until it advertises.
fn router(host: &Host, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["router"];
    all.extend_from_slice(args);
    let p = host.spawn(&all);
    let header = p.line();
    let key = header.rsplit(' ').next().unwrap().to_owned();
    loop {
        let l = p.line();
        if l.trim_start().starts_with("mdns") {
            break;
        }
    }
    (p, key)
}

fn ok(o: &std::process::Output) -> bool {
    if !o.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&o.stderr));
    }
    o.status.success()
}

fn peer_names(host: &Host, args: &[&str]) -> Vec<String> {
    let mut all = vec!["peers", "--json"];
    all.extend_from_slice(args);
    let o = host.run(&all);
    assert!(ok(&o));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    v.iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_peer_joins_and_sends_with_no_address() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (_router, _) = router(&h1, &[]);
    let listener = h2.spawn(&["listen", "--name", "B", "--json", "--count", "1"]);
    listener.wait_stderr("listening as");
    let o = h3.run(&["send", "--name", "A", "--ack", "B", "hi"]);
    assert!(ok(&o));
    let v: serde_json::Value = serde_json::from_str(&listener.line()).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["data"].as_str()),
        (Some("A"), Some("hi"))
    );
}

#[test]
fn a_peer_rejoins_a_restarted_router_on_its_own() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (first, _) = router(&h1, &["--name", "hub"]);
    let listener = h2.spawn(&["listen", "--name", "B", "--count", "2"]);
    listener.wait_stderr("listening as");
    assert!(ok(&h3.run(&["send", "--name", "A", "--ack", "B", "before"])));
    assert_eq!(listener.line(), "A: before");

    let pid = first.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(first.wait().success());
    let (_second, _) = router(&h1, &["--name", "hub"]);
    // The listener finds the new router by itself; wait until the router lists it.
    let start = Instant::now();
    while !peer_names(&h3, &[]).contains(&"B".to_owned()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "B did not rejoin"
        );
    }
    assert!(ok(&h3.run(&["send", "--name", "A", "--ack", "B", "after"])));
    assert_eq!(listener.line(), "A: after");
}

#[test]
fn two_meshes_on_one_lan_never_mix() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (_home, _) = router(&h1, &["--mesh", "home", "--name", "home-hub"]);
    let (_office, _) = router(&h2, &["--mesh", "office", "--name", "office-hub"]);
    assert_eq!(peer_names(&h3, &["--mesh", "home"]), ["home-hub"]);
    assert_eq!(peer_names(&h3, &["--mesh", "office"]), ["office-hub"]);
    let o = h3.run(&[
        "send",
        "--mesh",
        "office",
        "--name",
        "A",
        "--ack",
        "home-hub",
        "wrong mesh",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown peer \"home-hub\""));
}

#[test]
fn two_routers_of_one_mesh_are_both_found_and_chosen_deterministically() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (_r1, key1) = router(&h1, &["--mesh", "m", "--name", "r1"]);
    let (_r2, key2) = router(&h2, &["--mesh", "m", "--name", "r2"]);
    // Both are found; once they have heard each other, the one with the larger key
    // stands by.
    let start = Instant::now();
    loop {
        let o = h3.run(&["discover", "--mesh", "m", "--json", "--timeout", "2"]);
        assert!(ok(&o));
        let found: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        let primaries = found.iter().filter(|f| f["standby"] == false).count();
        if found.len() == 2 && primaries == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{found:?}");
    }
    // Peers pick the router with the smallest key.
    let expected = if key1 < key2 { "r1" } else { "r2" };
    for _ in 0..3 {
        assert_eq!(peer_names(&h3, &["--mesh", "m"]), [expected]);
    }
}

#[test]
fn a_multi_homed_router_is_reached_from_both_segments() {
    let Some(mut lan) = Lan::new(2) else { return };
    let router_host = lan.host(&[0, 1]);
    let (left, right) = (lan.host(&[0]), lan.host(&[1]));
    let (_router, _) = router(&router_host, &[]);
    let listener = left.spawn(&["listen", "--name", "left", "--count", "1"]);
    listener.wait_stderr("listening as");
    assert!(ok(
        &right.run(&["send", "--name", "right", "--ack", "left", "across"])
    ));
    assert_eq!(listener.line(), "right: across");
}

#[test]
fn a_router_limited_to_one_interface_is_invisible_on_the_other() {
    let Some(mut lan) = Lan::new(2) else { return };
    let router_host = lan.host(&[0, 1]);
    let (left, right) = (lan.host(&[0]), lan.host(&[1]));
    let (_router, _) = router(&router_host, &["--interface", "eth0"]);
    assert!(ok(&left.run(&["peers", "--json"])));
    let o = right.run(&["peers", "--json", "--discover-timeout", "1.5"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no router for mesh \"lanmesh\" found on eth0 within 1.5 s; try --router ADDR"),
        "{e}"
    );
}

#[test]
fn a_host_without_multicast_gets_one_clear_line() {
    let Some(mut lan) = Lan::new(1) else { return };
    let host = lan.host_without_multicast(0);
    let o = host.run(&["send", "--name", "A", "B", "hi"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains("multicast") && e.contains("--router ADDR"),
        "{e}"
    );
}

#[test]
fn the_advertisement_is_withdrawn_within_two_seconds_of_shutdown() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2) = (lan.host(&[0]), lan.host(&[0]));
    let (router, _) = router(&h1, &[]);
    let watch = h2.spawn(&["discover", "--watch", "--json", "--timeout", "20"]);
    let first: serde_json::Value = serde_json::from_str(&watch.line()).unwrap();
    assert_eq!(first["event"], "resolved");
    let stopped = Instant::now();
    let pid = router.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        let v: serde_json::Value = serde_json::from_str(&watch.line()).unwrap();
        if v["event"] == "removed" {
            break;
        }
    }
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(2), "withdrawn after {took:?}");
}

/// Benchmark, not a test: `just bench-discovery`. Times 20 joins by discovery (process
/// start to exit of `lanmesh send --ack`, so discovery + handshake + one acked message +
/// close) on a namespace LAN, and writes `bench/results/discovery.{md,json}`.
#[test]
#[ignore = "benchmark; run with `just bench-discovery`"]
fn bench_join_time_by_discovery() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2) = (lan.host(&[0]), lan.host(&[0]));
    let (_router, _) = router(&h1, &["--name", "hub"]);
    let mut times = Vec::new();
    for i in 0..20 {
        // Peers of a LAN start at independent moments; mDNS answers the same question at
        // most once a second, so space the joins as independent peers would be.
        std::thread::sleep(Duration::from_millis(1100));
        let start = Instant::now();
        let o = h2.run(&[
            "send",
            "--name",
            &format!("joiner-{i}"),
            "--ack",
            "hub",
            "hello",
        ]);
        let took = start.elapsed();
        assert!(ok(&o));
        times.push(took.as_secs_f64() * 1000.0);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[9] + sorted[10]) / 2.0;
    let worst = sorted[19];
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    let date = String::from_utf8(
        std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let date = date.trim();
    let md = format!(
        "# Join time by discovery\n\n{date}, {machine}, network namespaces on one bridge.\n\n\
         20 joins of `lanmesh send --ack` with no address (mDNS discovery, Noise handshake, one acked \
         message, close), spaced 1.1 s apart.\n\n| median | worst |\n|---|---|\n| {median:.0} ms | {worst:.0} ms |\n\n\
         All: {}\n",
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let json = serde_json::json!({ "date": date, "machine": machine, "joins_ms": times, "median_ms": median, "worst_ms": worst });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("discovery.md"), &md).unwrap();
    std::fs::write(dir.join("discovery.json"), format!("{json:#}\n")).unwrap();
    println!("{md}");
}
