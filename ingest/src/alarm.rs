//! A connection's own timer for its paced reads (see `Limits::read_interval`).
//!
//! tokio's timer wheel wakes a worker once more for every sleep longer than 64 ms: at the start
//! of the wheel slot the deadline falls in, to move it to the finer level, then again at the
//! deadline. A paced read sleeps up to an interval (200 ms), several times a second per
//! publisher. A kernel timer (`timerfd`) per publishing connection wakes it once, at the
//! deadline. Where there is none (not Linux, or out of descriptors), tokio's sleep.

use tokio::time::Instant;

pub(crate) struct Alarm {
    #[cfg(target_os = "linux")]
    timer: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// Creating the timer failed once: not tried again.
    #[cfg(target_os = "linux")]
    failed: bool,
}

impl Alarm {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            timer: None,
            #[cfg(target_os = "linux")]
            failed: false,
        }
    }

    /// Sleeps until `at`. The timer is made at the first sleep: only publishers sleep.
    pub(crate) async fn sleep_until(&mut self, at: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(timer) = self.timer() {
            match linux::sleep_until(timer, at).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, "the connection's timer failed; using tokio's");
                    self.timer = None;
                    self.failed = true;
                }
            }
        }
        tokio::time::sleep_until(at).await
    }

    #[cfg(target_os = "linux")]
    fn timer(&mut self) -> Option<&tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
        if self.timer.is_none() && !self.failed {
            match linux::timer() {
                Ok(timer) => self.timer = Some(timer),
                Err(error) => {
                    tracing::debug!(%error, "no timer for the connection; using tokio's");
                    self.failed = true;
                }
            }
        }
        self.timer.as_ref()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    pub(super) fn timer() -> io::Result<AsyncFd<OwnedFd>> {
        let fd =
            rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        // SAFETY: an `OwnedFd` is open until dropped, and always names the same descriptor.
        Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
    }

    pub(super) async fn sleep_until(timer: &AsyncFd<OwnedFd>, at: Instant) -> io::Result<()> {
        // Relative to now: `Instant` does not show its clock. At least 1 ns (zero disarms).
        // Arming again also forgets an expiry of an earlier sleep that was not read.
        let wait = at.saturating_duration_since(Instant::now()).max(std::time::Duration::from_nanos(1));
        let value = Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) };
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        rustix::time::timerfd_settime(
            timer,
            TimerfdTimerFlags::empty(),
            &Itimerspec { it_interval: zero, it_value: value },
        )?;
        loop {
            let mut ready = timer.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(timer.get_ref(), &mut expirations) {
                Ok(_) => return Ok(()),
                // Readiness left over from an earlier sleep: wait for this one.
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sleeps_until_the_instant_each_time() {
        let mut alarm = Alarm::new();
        for ms in [150, 5, 80] {
            let start = Instant::now();
            let at = start + Duration::from_millis(ms);
            alarm.sleep_until(at).await;
            let woke = Instant::now();
            assert!(woke >= at, "woke {:?} early", at - woke);
            assert!(woke < at + Duration::from_millis(50), "woke {:?} late", woke - at);
        }
        #[cfg(target_os = "linux")]
        assert!(alarm.timer.is_some(), "the kernel timer was used");
        // An instant already past: at once.
        let start = Instant::now();
        alarm.sleep_until(start - Duration::from_millis(10)).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn an_abandoned_sleep_does_not_end_the_next_early() {
        let mut alarm = Alarm::new();
        let soon = Instant::now() + Duration::from_millis(10);
        // Given up before its end, as when another branch of the connection's select wins...
        let _ = tokio::time::timeout(Duration::from_millis(1), alarm.sleep_until(soon)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...its expiry (unread) does not end a later sleep.
        let at = Instant::now() + Duration::from_millis(60);
        alarm.sleep_until(at).await;
        assert!(Instant::now() >= at);
    }
}
