//! A live stream's LL-HLS progress, and the viewers waiting for it.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::HlsProgress;

/// A live stream's [`HlsProgress`], moved on by its packaging and waited on by blocking
/// playlist reloads and preload-hinted part requests.
///
/// Waiters are woken in the order they began to wait. tokio's `watch` wakes its waiters in
/// eight groups picked at random per wait: with thousands of viewers held for each next part,
/// a viewer early in one fan-out was often late in the next, so its wait swung by the length
/// of a whole fan-out (the tail of `cargo bench --bench viewers`). Woken in arrival order, a
/// viewer mostly keeps its place from part to part: the runtime's workers then run the woken
/// tasks roughly, not exactly, in that order (a worker runs its newest wake first and hands
/// the older half of a full queue to the other).
#[derive(Clone)]
pub struct ProgressWatch(Arc<Shared>);

struct Shared {
    now: Mutex<HlsProgress>,
    changed: Notify,
}

impl ProgressWatch {
    pub fn new(progress: HlsProgress) -> Self {
        Self(Arc::new(Shared { now: Mutex::new(progress), changed: Notify::new() }))
    }

    pub fn get(&self) -> HlsProgress {
        *self.0.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the progress, then wakes every waiter, the longest waiting first.
    pub fn update(&self, change: impl FnOnce(&mut HlsProgress)) {
        change(&mut self.0.now.lock().unwrap_or_else(PoisonError::into_inner));
        self.0.changed.notify_waiters();
    }

    /// Waits until `done` holds; returns the progress it held for.
    pub async fn wait_for(&self, done: impl Fn(&HlsProgress) -> bool) -> HlsProgress {
        loop {
            // Made before the check, so an update between the two still wakes it (a `Notified`
            // counts `notify_waiters` calls from its creation); it joins the queue of waiters,
            // and takes the queue's lock, only when it has to wait.
            let changed = self.0.changed.notified();
            let now = self.get();
            if done(&now) {
                return now;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wait_ends_when_its_condition_holds() {
        let watch = ProgressWatch::new(HlsProgress::default());
        let waiting = tokio::spawn({
            let watch = watch.clone();
            async move { watch.wait_for(|p| p.last_segment >= Some(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        watch.update(|p| p.last_segment = Some(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "woken for a progress short of its condition");
        watch.update(|p| p.last_segment = Some(2));
        let reached = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(reached.last_segment, Some(2));
    }

    /// One thread runs woken tasks in the order they were woken (a multi-thread runtime only
    /// roughly): each waiter records its number when it runs.
    #[tokio::test(flavor = "current_thread")]
    async fn waiters_are_woken_in_the_order_they_began_to_wait() {
        let watch = ProgressWatch::new(HlsProgress::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..200 {
            let (watch, order) = (watch.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                watch.wait_for(|p| p.last_part.is_some()).await;
                order.lock().unwrap().push(n);
            }));
            // Each waiter registers before the next is spawned.
            tokio::task::yield_now().await;
        }
        watch.update(|p| p.last_part = Some((0, 0)));
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(*order, (0..200).collect::<Vec<_>>());
    }
}
