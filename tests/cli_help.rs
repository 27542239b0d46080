//! `--help` against the README (issue 18, item 4): every command the README's command
//! table lists exists, and every flag it gives that command is one the binary takes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lanmesh");

fn help(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(o.status.success(), "{args:?} --help");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_readme_command_table_matches_the_binary() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("### The commands")
        .nth(1)
        .expect("the README has a command table");
    let top = help(&[]);
    let mut checked = 0;
    let rows = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    for row in rows {
        let Some(cell) = row.strip_prefix("| `") else {
            continue;
        };
        let usage = cell.split('|').next().unwrap();
        // A row may list several commands: `peers [--json]`, `discover`, ...
        for part in usage.split("`, `") {
            let part = part.trim_matches(['`', ' ']);
            let command = part.split_whitespace().next().unwrap();
            assert!(
                top.lines().any(|l| l.trim_start().starts_with(command)),
                "`lanmesh {command}` is in the README but not in --help"
            );
            let own = help(&[command]);
            for flag in part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if flag.starts_with("--") {
                    assert!(
                        own.contains(flag),
                        "`lanmesh {command}` has no {flag}:\n{own}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} commands found in the README table"
    );
}

#[test]
fn every_command_has_help_that_says_what_it_does() {
    for command in [
        "router",
        "send",
        "listen",
        "peer",
        "broadcast",
        "request",
        "respond",
        "peers",
        "keygen",
        "discover",
        "bench",
    ] {
        let text = help(&[command]);
        assert!(
            text.lines().next().is_some_and(|l| !l.is_empty()),
            "{command}: {text}"
        );
    }
    // The peer's help shows the actions it reads; respond's says how the command is run.
    let peer = help(&["peer"]);
    for action in [
        "\"ack\":true",
        "\"broadcast\":true",
        "\"request\"",
        "\"reply\"",
        "\"decline\"",
    ] {
        assert!(peer.contains(action), "peer --help lacks {action}");
    }
    let respond = help(&["respond"]);
    assert!(
        respond.contains("LANMESH_FROM") && respond.contains("sh -c"),
        "{respond}"
    );
}
