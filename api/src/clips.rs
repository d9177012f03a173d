//! Clips made by hawker itself: a highlight of each product's pin when a stream is saved, and
//! a "video receipt" of the moments before each order. Both are ordinary clips (a VOD
//! playlist over the stream's segments), so they stay with a saved stream and go with it.

use chrono::{DateTime, Utc};

use crate::AppState;
use crate::model::{Clip, ClipKind, Order, Stream};
use crate::secrets;

/// The longest highlight: a pin left on for an hour is not an hour of highlight.
pub const MAX_HIGHLIGHT: chrono::Duration = chrono::Duration::minutes(5);
/// What a receipt shows: this long before the order's media time.
pub const RECEIPT_SPAN: chrono::Duration = chrono::Duration::seconds(30);

/// Makes and records a clip of `span`; `Ok(None)` when nothing is stored in it.
pub async fn make(
    state: &AppState,
    stream: &Stream,
    span: (DateTime<Utc>, DateTime<Utc>),
    (title, kind, created_by): (Option<String>, ClipKind, &str),
) -> anyhow::Result<Option<Clip>> {
    let id = secrets::new_id();
    let Some(made) = state.live.make_clip(&stream.playback_id, &id, span).await? else { return Ok(None) };
    let clip = Clip {
        id,
        stream_id: stream.id.clone(),
        title,
        start: made.start,
        end: made.end,
        playlist_path: made.path,
        created_by: created_by.to_owned(),
        created_at: Utc::now(),
        video_path: None,
        kind,
        requested: Some(span),
    };
    state.db.insert_clip(&clip).await?;
    Ok(Some(clip))
}

/// On save: every product pin of the stream becomes a highlight, from the pin to its unpin
/// (or the end), at most `MAX_HIGHLIGHT`.
pub async fn highlights_on_save(state: &AppState, stream: &Stream) {
    let pins = match state.db.pins(&stream.id, true).await {
        Ok(pins) => pins,
        Err(e) => return tracing::error!(stream = %stream.id, "reading pins for highlights: {e}"),
    };
    let ended = stream.ended_at.unwrap_or_else(Utc::now);
    for pin in pins {
        let end = pin.unpinned_at.unwrap_or(ended).min(pin.pinned_at + MAX_HIGHLIGHT);
        let kind = ClipKind::Highlight { product_id: pin.product_id.clone() };
        match make(state, stream, (pin.pinned_at, end), (Some(pin.title), kind, &stream.owner_id)).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(stream = %stream.id, product = %pin.product_id, "making a highlight: {e:#}"),
        }
    }
}

/// An order's video receipt: the `RECEIPT_SPAN` before its media time, in the background
/// (the segments are already stored; the open one is not waited for).
pub fn receipt_later(state: &AppState, stream: &Stream, shop_id: &str, order: &Order) {
    let Some(at) = order.media_time else { return };
    let (state, stream) = (state.clone(), stream.clone());
    let order_ref = format!("{shop_id}/{}", order.order_id);
    let title = format!("Order {}", order.order_id);
    tokio::spawn(async move {
        let kind = ClipKind::Receipt { order_ref };
        let owner = stream.owner_id.clone();
        if let Err(e) = make(&state, &stream, (at - RECEIPT_SPAN, at), (Some(title), kind, &owner)).await {
            tracing::warn!(stream = %stream.id, "making an order's video receipt: {e:#}");
        }
    });
}
