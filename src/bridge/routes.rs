//! Which line each connected terminal is on, kept by one task: a refund's new state
//! reaches its terminal's line owner through it.

use std::collections::HashMap;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::line::{LineSender, ToLine};
use crate::ledger::RefundRecord;

/// What the routing task is told.
#[derive(Debug)]
pub(super) enum Route {
    /// Terminal `id` said HELLO on the line whose owner is `line`.
    Connected { id: String, line: LineSender },
    /// Terminal `id` left the line whose owner is `line`.
    Disconnected { id: String, line: LineSender },
    /// A refund's state changed: to its terminal's line, if it is connected.
    Changed(Box<RefundRecord>),
}

/// Routes until the bridge stops, publishing the connected terminals' ids (sorted)
/// to `connected`.
pub(super) async fn run(
    mut from: mpsc::UnboundedReceiver<Route>,
    connected: watch::Sender<Vec<String>>,
    stop: CancellationToken,
) {
    let mut lines: HashMap<String, LineSender> = HashMap::new();
    loop {
        let route = tokio::select! {
            route = from.recv() => route,
            _ = stop.cancelled() => None,
        };
        let Some(route) = route else { return };
        match route {
            Route::Connected { id, line } => {
                if let Some(before) = lines.get(&id)
                    && !before.same_channel(&line)
                {
                    tracing::warn!(terminal = %id, "terminal id now on another line; later updates go here");
                }
                lines.insert(id, line);
                publish(&lines, &connected);
            }
            Route::Disconnected { id, line } => {
                // The terminal may have said HELLO on another line since.
                if lines.get(&id).is_some_and(|now| now.same_channel(&line)) {
                    lines.remove(&id);
                    publish(&lines, &connected);
                }
            }
            Route::Changed(refund) => {
                if let Some(line) = lines.get(&refund.terminal_id) {
                    let _ = line.send(ToLine::Changed(*refund));
                }
            }
        }
    }
}

fn publish(lines: &HashMap<String, LineSender>, connected: &watch::Sender<Vec<String>>) {
    let mut ids: Vec<String> = lines.keys().cloned().collect();
    ids.sort();
    connected.send_replace(ids);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits until the connected terminals are `want`.
    async fn until_connected(watching: &mut watch::Receiver<Vec<String>>, want: &[&str]) {
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            watching.wait_for(|ids| ids.iter().map(String::as_str).eq(want.iter().copied())),
        )
        .await;
        assert!(matches!(seen, Ok(Ok(_))), "connected never became {want:?}");
    }

    #[tokio::test]
    async fn a_terminal_that_moved_lines_stays_routed_to_its_new_line() {
        let (routes, from) = mpsc::unbounded_channel();
        let (connected, mut watching) = watch::channel(Vec::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(from, connected, stop.clone()));
        let (first, mut first_rx) = mpsc::unbounded_channel();
        let (second, mut second_rx) = mpsc::unbounded_channel();
        let id = || "T-1".to_owned();
        let send = |route| routes.send(route).unwrap();
        send(Route::Connected {
            id: id(),
            line: first.clone(),
        });
        until_connected(&mut watching, &["T-1"]).await;
        send(Route::Connected {
            id: id(),
            line: second.clone(),
        });
        // The first line's late goodbye must not unroute the terminal from the second.
        send(Route::Disconnected {
            id: id(),
            line: first.clone(),
        });
        let (_dir, refund) = super::super::line::tests_support::a_refund_of("T-1");
        send(Route::Changed(Box::new(refund.clone())));
        match second_rx.recv().await {
            Some(ToLine::Changed(got)) => assert_eq!(got.id, refund.id),
            other => panic!("{other:?}"),
        }
        assert!(first_rx.try_recv().is_err(), "the old line heard it");
        assert_eq!(*watching.borrow(), ["T-1"]);
        send(Route::Disconnected {
            id: id(),
            line: second,
        });
        until_connected(&mut watching, &[]).await;
        // A change for a terminal on no line goes nowhere, and nothing breaks.
        send(Route::Changed(Box::new(refund)));
        stop.cancel();
        task.await.unwrap();
        assert!(first_rx.try_recv().is_err() && second_rx.try_recv().is_err());
    }
}
