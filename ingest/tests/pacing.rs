//! When a publisher's socket is read, as the sink's next output decides (see
//! `Limits::read_interval` and `MediaSink::next_output`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hawker_ingest::{Limits, NextOutput};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Ticks far apart: a frame read within a fraction of one was read as it came, not on a tick.
const INTERVAL: Duration = Duration::from_secs(2);
const PROMPT: Duration = Duration::from_millis(150);

/// While the sink makes the output whose media it has, the publisher's frames are read as they
/// come (it may need more); once it has made it, frames sent wait in the socket until the
/// instant its next output gives, and are read then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_come_as_sent_while_the_sink_makes_an_output_then_wait_for_its_next_one() {
    let mut server = TestServer::start(Limits { read_interval: INTERVAL, ..Limits::default() }).await;
    let made = Arc::new(Notify::new());
    server.set_next_output("paced", NextOutput::Making(made.clone()));
    let mut publisher =
        RawPublisher::publish(handshaken(server.addr).await, &good_key("paced")).await.expect("publish");
    publisher.video(0, AVC_HEADER).await.expect("send");
    publisher.video(0, AVC_KEY).await.expect("send");
    server.wait_until("paced", |recs| recs.len() == 2).await;

    for (n, ms) in [(3, 33), (4, 66), (5, 100)] {
        let sent = Instant::now();
        publisher.video(ms, AVC_INTER).await.expect("send");
        server.wait_until("paced", |recs| recs.len() == n).await;
        let read = server.frame_arrivals("paced")[n - 1].duration_since(sent);
        assert!(read < PROMPT, "frame {n} read {read:?} after it was sent, while the sink makes an output");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Made; the next output's media is due in 600 ms.
    let due = Instant::now() + Duration::from_millis(600);
    server.set_next_output("paced", NextOutput::MediaBy(due.into_std()));
    made.notify_one();
    for ms in [133, 166, 200] {
        publisher.video(ms, AVC_INTER).await.expect("send");
    }
    server.wait_until("paced", |recs| recs.len() == 8).await;
    let arrivals = server.frame_arrivals("paced");
    for (n, at) in arrivals.iter().enumerate().skip(5) {
        assert!(*at >= due, "frame {} read {:?} before its output's media was due", n + 1, due - *at);
        assert!(at.duration_since(due) < PROMPT, "frame {} read {:?} after it was due", n + 1, at.duration_since(due));
    }
    drop(publisher);
    server.wait_for_end("paced").await;
}
