//! Throughput measured in turns.
//!
//! Like the round trip ([`crate::rtt`]), each throughput test starts every system's
//! server first and then lets the systems take turns, [`TURNS`] runs of a third of the
//! time each, so a change in the machine's load falls on all of them. A system's row
//! adds up its turns: everything sent and delivered, over the time all its turns took.

use crate::error::BenchError;
use crate::row::{Row, System};
use crate::servers::ServerProcess;

/// How many runs each system gets.
pub(crate) const TURNS: u32 = 3;

/// Starts every system's server, then runs `turn` for each in turns; returns a row or
/// an error per system, in the order given.
pub(crate) fn in_turns(
    systems: &[System],
    mut start: impl FnMut(System) -> Result<ServerProcess, BenchError>,
    mut turn: impl FnMut(System, &ServerProcess) -> Result<Row, BenchError>,
) -> Vec<(System, Result<Row, BenchError>)> {
    let mut running = Vec::new();
    let mut outcomes = Vec::new();
    for &system in systems {
        match start(system) {
            Ok(server) => running.push((system, server, Ok(None::<Row>))),
            Err(e) => outcomes.push((system, Err(e))),
        }
    }
    for _ in 0..TURNS {
        for (system, server, total) in running.iter_mut() {
            let Ok(sum) = total else { continue };
            match turn(*system, server) {
                Ok(row) => *sum = Some(add(sum.take(), row)),
                Err(e) => *total = Err(e),
            }
        }
    }
    for (system, _, total) in running {
        let outcome =
            total.and_then(|row| row.ok_or_else(|| BenchError::client("bench", "no turn ran")));
        outcomes.push((system, outcome));
    }
    outcomes.sort_by_key(|(system, _)| systems.iter().position(|s| s == system));
    outcomes
}

/// One row for two turns of the same throughput test.
fn add(sum: Option<Row>, turn: Row) -> Row {
    let Some(mut sum) = sum else { return turn };
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
        let row = add(Some(turn(300, 200, 1.0)), turn(100, 100, 0.5));
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
            |_| Err(BenchError::Thread),
            |system, _| {
                calls.push(system);
                Ok(turn(1, 1, 1.0))
            },
        );
        assert!(calls.is_empty(), "no server, no turn");
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|(_, o)| o.is_err()));
        assert_eq!(outcomes[0].0, System::Relay);
    }
}
