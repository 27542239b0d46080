//! A periodic callback for an actor that costs next to nothing between ticks.
//!
//! actix polls every future of an actor each time the actor wakes, so the timer of
//! `run_interval` is checked against the timer wheel on every message and every record.
//! A [`Ticker`] registers with the timer through a waker of its own and, between ticks,
//! only looks at the flag that waker sets.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use actix::{Actor, ActorFuture, AsyncContext, SpawnHandle};
use tokio::time::{Instant, Sleep};

/// Calls `f` on the actor every `period`, first after one period, until the actor stops
/// or the handle is cancelled.
pub fn every<A, F>(ctx: &mut A::Context, period: Duration, f: F) -> SpawnHandle
where
    A: Actor,
    A::Context: AsyncContext<A>,
    F: FnMut(&mut A, &mut A::Context) + 'static,
{
    ctx.spawn(Ticker::new(period, f))
}

/// The future behind [`every`], for an actor that polls it inside a future of its own
/// (one future fewer for actix to poll on each wake-up). It never completes.
pub struct Ticker<F> {
    sleep: Pin<Box<Sleep>>,
    period: Duration,
    alarm: Arc<Alarm>,
    /// Wakes through `alarm`: built once.
    waker: Waker,
    /// The sleep has our waker: until the alarm rings there is nothing to check.
    armed: bool,
    f: F,
}

// Nothing in it is pinned structurally: the sleep is boxed and `f` is only called.
impl<F> Unpin for Ticker<F> {}

/// Rung by the timer: notes it, then wakes the actor's task.
#[derive(Default)]
struct Alarm {
    rang: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.rang.store(true, Ordering::Release);
        let task = self.task.lock().map(|t| t.clone()).unwrap_or(None);
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<F> Ticker<F> {
    /// Calls `f` every `period`, first after one period.
    pub fn new(period: Duration, f: F) -> Self {
        let alarm = Arc::new(Alarm::default());
        Self {
            sleep: Box::pin(tokio::time::sleep(period)),
            period,
            waker: Waker::from(alarm.clone()),
            alarm,
            armed: false,
            f,
        }
    }
}

impl<A, F> ActorFuture<A> for Ticker<F>
where
    A: Actor,
    F: FnMut(&mut A, &mut A::Context) + 'static,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        if this.armed && !this.alarm.rang.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        // The task to wake when the alarm rings: the actor's, the same on every poll.
        if let Ok(mut task) = this.alarm.task.lock() {
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        loop {
            let mut alarm_cx = Context::from_waker(&this.waker);
            if this.sleep.as_mut().poll(&mut alarm_cx).is_pending() {
                this.armed = true;
                return Poll::Pending;
            }
            // No burst of catch-up ticks after the thread was held up.
            let next = (this.sleep.deadline() + this.period).max(Instant::now());
            this.sleep.as_mut().reset(next);
            (this.f)(act, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Context as ActorContext, Handler, Message};

    struct Counter {
        ticks: u32,
        /// Told the time of the third tick.
        third: Option<tokio::sync::oneshot::Sender<std::time::Instant>>,
    }

    impl Actor for Counter {
        type Context = ActorContext<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            every(ctx, Duration::from_millis(5), |act: &mut Self, _| {
                act.ticks += 1;
                if act.ticks == 3 {
                    if let Some(third) = act.third.take() {
                        let _ = third.send(std::time::Instant::now());
                    }
                }
            });
        }
    }

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Ticks;

    impl Handler<Ticks> for Counter {
        type Result = u32;
        fn handle(&mut self, _: Ticks, _: &mut Self::Context) -> u32 {
            self.ticks
        }
    }

    #[actix_rt::test]
    async fn ticks_come_once_a_period_whatever_else_wakes_the_actor() {
        let (third, at_third) = tokio::sync::oneshot::channel();
        let started = std::time::Instant::now();
        let addr = actix::Actor::start(Counter {
            ticks: 0,
            third: Some(third),
        });
        // Messages wake the actor in between: none of them may count as a tick.
        for _ in 0..50 {
            let ticks = addr.send(Ticks).await.unwrap();
            let due = started.elapsed().as_millis() / 5;
            assert!(
                u128::from(ticks) <= due,
                "{ticks} ticks after {due} periods"
            );
        }
        let third = tokio::time::timeout(Duration::from_secs(10), at_third)
            .await
            .expect("the ticker stopped ticking")
            .unwrap();
        assert!(third - started >= Duration::from_millis(15));
    }
}
