//! Discovery end to end, on a LAN of network namespaces this test builds itself: the
//! `lanmesh` binary runs inside the namespaces, so no multicast reaches a real interface.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{Host, Lan};
use common::proc::Proc;

/// Starts `lanmesh router ARGS` in `host` and waits until it advertises.
fn router(host: &Host, args: &[&str]) -> (Proc, String) {
    router_with_home(host, &host.home(), args)
}

/// Starts `lanmesh router ARGS` in `host` with the state directory (so the key) `home`,
/// and waits until it advertises.
fn router_with_home(host: &Host, home: &std::path::Path, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["router"];
    all.extend_from_slice(args);
    let p = host.spawn_with_home(home, &all);
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

/// The router `host` remembers for `mesh` (`addr key-hex`), if any.
fn remembered(host: &Host, mesh: &str) -> Option<String> {
    let text = std::fs::read_to_string(host.home().join("last_routers")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{mesh} ")).map(str::to_owned))
}

/// Stops `router` with SIGTERM and waits for it to exit.
fn stop(router: Proc) {
    let pid = router.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(router.wait().success());
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

#[test]
fn joins_back_to_back_all_work_and_remember_the_router() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2) = (lan.host(&[0]), lan.host(&[0]));
    let (router, key) = router(&h1, &["--name", "hub"]);
    // No spacing: each join asks right after the previous one was answered.
    for i in 0..5 {
        let o = h2.run(&["send", "--name", &format!("j{i}"), "--ack", "hub", "hi"]);
        assert!(ok(&o), "join {i}");
        router.wait_stdout(&format!("j{i}: hi"));
    }
    let last = remembered(&h2, "lanmesh").expect("the router is remembered");
    assert!(
        last.starts_with(&format!("{}:7400 {key}", h1.addrs[0])),
        "{last}"
    );
}

#[test]
fn a_remembered_router_that_moved_is_found_again_by_discovery() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (first, key) = router(&h1, &["--name", "hub"]);
    assert!(ok(&h2.run(&["send", "--name", "A", "--ack", "hub", "one"])));
    let at_h1 = format!("{}:7400 {key}", h1.addrs[0]);
    assert!(remembered(&h2, "lanmesh").unwrap().starts_with(&at_h1));
    stop(first);
    // The same router (its state directory, so its key) now runs on another host:
    // nothing listens at the remembered address any more.
    let (moved, moved_key) = router_with_home(&h3, &h1.home(), &["--name", "hub"]);
    assert_eq!(moved_key, key);
    assert!(ok(&h2.run(&["send", "--name", "A", "--ack", "hub", "two"])));
    moved.wait_stdout("A: two");
    let at_h3 = format!("{}:7400 {key}", h3.addrs[0]);
    let last = remembered(&h2, "lanmesh").unwrap();
    assert!(last.starts_with(&at_h3), "{last}");
}

#[test]
fn a_remembered_address_held_by_a_router_of_another_key_is_not_trusted() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (first, key) = router(&h1, &["--name", "hub"]);
    assert!(ok(&h2.run(&["send", "--name", "A", "--ack", "hub", "one"])));
    stop(first);
    // Another router, with a key of its own and a peer called "hub" too, takes the
    // remembered address without advertising; the real one comes back elsewhere.
    let addr = format!("{}:7400", h1.addrs[0]);
    let impostor_home = h1.home().with_file_name("impostor");
    let impostor = h1.spawn_with_home(
        &impostor_home,
        &[
            "router",
            "--no-mdns",
            "--no-http",
            "--listen",
            &addr,
            "--name",
            "hub",
        ],
    );
    let impostor_key = impostor.line().rsplit(' ').next().unwrap().to_owned();
    assert_ne!(impostor_key, key);
    let (real, _) = router_with_home(&h3, &h1.home(), &["--name", "hub"]);
    let o = h2.run(&["send", "--name", "A", "--ack", "hub", "two"]);
    assert!(ok(&o));
    // It reached the real router, and neither pinned nor remembered the other one.
    real.wait_stdout("A: two");
    let pins = std::fs::read_to_string(h2.home().join("known_routers")).unwrap();
    assert!(!pins.contains(&impostor_key), "{pins}");
    let last = remembered(&h2, "lanmesh").unwrap();
    assert!(
        last.starts_with(&format!("{}:7400 {key}", h3.addrs[0])),
        "{last}"
    );
}

/// Benchmark, not a test: `just bench-discovery`. Times joins by discovery (process
/// start to exit of `lanmesh send --ack`, so discovery + handshake + one acked message +
/// close) on a namespace LAN, back to back with no spacing, as a script calling the CLI in
/// a loop does: 20 as the CLI runs by default (the first is cold: nothing remembered,
/// then the last router is tried first), and 20 with the remembered router removed
/// before each, so every one asks the LAN. Writes `bench/results/discovery.{md,json}`.
#[test]
#[ignore = "benchmark; run with `just bench-discovery`"]
fn bench_join_time_by_discovery() {
    let Some(mut lan) = Lan::new(1) else { return };
    let (h1, h2, h3) = (lan.host(&[0]), lan.host(&[0]), lan.host(&[0]));
    let (_router, _) = router(&h1, &["--name", "hub"]);
    // A router answers only once its mDNS probing is over (RFC 6762 §8.1, ~0.75 s after
    // it starts); time joins to a router that is up, as a script's loop meets it. A third
    // host watches for it, so the joiner starts with nothing heard or remembered.
    let start = Instant::now();
    loop {
        let o = h3.run(&["discover", "--json", "--timeout", "0.3"]);
        assert!(ok(&o));
        let found: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        if !found.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never advertised"
        );
    }
    // One name, as a script's loop uses (`lanmesh send --name A B dN`).
    let join = |i: usize| {
        let start = Instant::now();
        let o = h2.run(&["send", "--name", "joiner", "--ack", "hub", &format!("d{i}")]);
        let took = start.elapsed();
        assert!(ok(&o), "join {i}");
        took.as_secs_f64() * 1000.0
    };
    let remembered: Vec<f64> = (0..20).map(join).collect();
    let browsed: Vec<f64> = (20..40)
        .map(|i| {
            let _ = std::fs::remove_file(h2.home().join("last_routers"));
            join(i)
        })
        .collect();
    let stats = |times: &[f64]| {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        ((sorted[9] + sorted[10]) / 2.0, sorted[19])
    };
    let (median, worst) = stats(&remembered);
    let (browse_median, browse_worst) = stats(&browsed);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // Other work on the machine shows in the numbers: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    let machine = format!(
        "{} cores, {}, {profile} build, load average {load}",
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
    let list = |times: &[f64]| {
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let md = format!(
        "# Join time by discovery\n\n{date}, {machine}, network namespaces on one bridge.\n\n\
         Joins of `lanmesh send --name joiner --ack hub dN` with no address (discovery, Noise handshake, one acked \
         message, close), run back to back with no spacing, from process start to exit, once the \
         router's advertisement is up (mDNS probing takes ~0.75 s after a router starts).\n\n\
         | joins (20 each) | median | worst |\n|---|---|---|\n\
         | as the CLI runs (first cold, then the remembered router) | {median:.0} ms | {worst:.0} ms |\n\
         | asking the LAN every time (one-shot mDNS query) | {browse_median:.0} ms | {browse_worst:.0} ms |\n\n\
         As the CLI runs, ms: {}\n\nAsking the LAN every time, ms: {}\n",
        list(&remembered),
        list(&browsed),
    );
    let json = serde_json::json!({
        "date": date,
        "machine": machine,
        "spacing_ms": 0,
        "joins_ms": remembered,
        "median_ms": median,
        "worst_ms": worst,
        "browse_joins_ms": browsed,
        "browse_median_ms": browse_median,
        "browse_worst_ms": browse_worst,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("discovery.md"), &md).unwrap();
    std::fs::write(dir.join("discovery.json"), format!("{json:#}\n")).unwrap();
    println!("{md}");
}
