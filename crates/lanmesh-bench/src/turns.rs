//! Tests measured in turns.
//!
//! The round trip ([`crate::rtt`]) and the throughput tests start every system first
//! and then let the systems take turns, so a change in the machine's load falls on all
//! of them. A throughput test gives each system [`TURNS`] runs of a third of the time;
//! its row adds the runs up: everything sent and delivered, over the time all its runs
//! took.

use crate::error::BenchError;
use crate::row::{Row, System};

/// How many runs each system gets in a throughput test.
pub(crate) const TURNS: u32 = 3;

/// Starts every system with `start`, then runs `turn` `turns` times for each, in turns,
/// adding a system's results up with `add`. A system whose start or turn fails gets
/// the error and no more turns. Returns each system's sum or error, in the order given.
pub(crate) fn in_turns<S, T>(
    systems: &[System],
    turns: u32,
    mut start: impl FnMut(System) -> Result<S, BenchError>,
    mut turn: impl FnMut(System, &S) -> Result<T, BenchError>,
    mut add: impl FnMut(T, T) -> T,
) -> Vec<(System, Result<T, BenchError>)> {
    let mut running = Vec::new();
    let mut outcomes = Vec::new();
    for &system in systems {
        match start(system) {
            Ok(started) => running.push((system, started, Ok(None::<T>))),
            Err(e) => outcomes.push((system, Err(e))),
        }
    }
    for _ in 0..turns {
        for (system, started, total) in running.iter_mut() {
            let Ok(sum) = total else { continue };
            match turn(*system, started) {
                Ok(result) => {
                    *sum = Some(match sum.take() {
                        Some(before) => add(before, result),
                        None => result,
                    });
                }
                Err(e) => *total = Err(e),
            }
        }
    }
    for (system, _, total) in running {
        let outcome =
            total.and_then(|sum| sum.ok_or_else(|| BenchError::client("bench", "no turn ran")));
        outcomes.push((system, outcome));
    }
    outcomes.sort_by_key(|(system, _)| systems.iter().position(|s| s == system));
    outcomes
}

/// One row for two runs of the same throughput test.
pub(crate) fn add(mut sum: Row, turn: Row) -> Row {
    sum.sent += turn.sent;
    sum.delivered += turn.delivered;
    sum.seconds += turn.seconds;
    if sum.seconds > 0.0 {
        let rate = sum.delivered as f64 / sum.seconds;
        sum.msgs_per_s = Some(rate);
        sum.mb_per_s = sum.payload_bytes.map(|size| rate * size as f64 / 1e6);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Test;

    fn turn(sent: u64, delivered: u64, seconds: f64) -> Row {
        let mut row = Row::new(System::Nats, Test::Throughput(64), sent, delivered, seconds);
        row.payload_bytes = Some(64);
        row.msgs_per_s = Some(delivered as f64 / seconds);
        row
    }

    #[test]
    fn turns_add_up_to_one_rate_over_their_whole_time() {
        let row = add(turn(300, 200, 1.0), turn(100, 100, 0.5));
        assert_eq!((row.sent, row.delivered), (400, 300));
        assert_eq!(row.seconds, 1.5);
        assert_eq!(row.msgs_per_s, Some(200.0));
        assert_eq!(row.mb_per_s, Some(200.0 * 64.0 / 1e6));
    }

    #[test]
    fn a_system_whose_server_fails_gets_its_error_and_no_turn() {
        let mut calls = Vec::new();
        let outcomes = in_turns(
            &[System::Relay, System::Nats],
            TURNS,
            |_| Err::<(), _>(BenchError::Thread),
            |system, _| {
                calls.push(system);
                Ok(turn(1, 1, 1.0))
            },
            add,
        );
        assert!(calls.is_empty(), "no server, no turn");
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|(_, o)| o.is_err()));
        assert_eq!(outcomes[0].0, System::Relay);
    }
}
