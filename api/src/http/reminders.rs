//! `PUT` / `DELETE` / `GET /streams/{id}/reminder`: a signed-in viewer asks to be reminded of
//! an upcoming stream (see [`crate::reminders`]); `GET /streams/{id}/calendar.ics`: the
//! scheduled stream as an iCalendar event, for anyone who may see it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::Caller;
use super::error::ApiError;
use super::streams::visible_stream;
use crate::AppState;
use crate::model::{Stream, StreamStatus};

#[derive(Serialize)]
pub struct Reminder {
    /// The caller will be reminded.
    reminder: bool,
}

/// A stream reminders apply to: listed (practice streams are their seller's alone).
async fn listed_stream(state: &AppState, id: &str, caller: Option<&Caller>) -> Result<Stream, ApiError> {
    let stream = visible_stream(state, id, caller).await?;
    if stream.practice && !caller.is_some_and(|c| c.controls(&stream)) {
        return Err(ApiError::NotFound("stream"));
    }
    Ok(stream)
}

/// Remind me: only while the stream is scheduled; asking twice changes nothing.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Reminder>, ApiError> {
    let stream = listed_stream(&state, &id, Some(&caller)).await?;
    if stream.status != StreamStatus::Scheduled || stream.practice {
        return Err(ApiError::Conflict(stream.status));
    }
    state.db.add_reminder(&stream.id, &caller.0.id).await?;
    Ok(Json(Reminder { reminder: true }))
}

/// Undo: at any time; without a reminder, nothing changes.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Reminder>, ApiError> {
    let stream = listed_stream(&state, &id, Some(&caller)).await?;
    state.db.remove_reminder(&stream.id, &caller.0.id).await?;
    Ok(Json(Reminder { reminder: false }))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Reminder>, ApiError> {
    let stream = listed_stream(&state, &id, Some(&caller)).await?;
    Ok(Json(Reminder { reminder: state.db.has_reminder(&stream.id, &caller.0.id).await? }))
}

/// How long the calendar event lasts: streams have no planned end.
const CALENDAR_EVENT_MINUTES: i64 = 60;

/// The scheduled stream as an iCalendar (RFC 5545) event: its start, title, page and
/// description. 404 without `scheduled_at`.
pub async fn calendar(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // A cancelled stream's file stays: calendars that fetch it again learn of the cancellation.
    let stream = state.db.stream(&id).await?.ok_or(ApiError::NotFound("stream"))?;
    let owner = caller.as_ref().is_some_and(|c| c.controls(&stream));
    if (stream.status == StreamStatus::Ended || stream.practice) && !owner {
        return Err(ApiError::NotFound("stream"));
    }
    let Some(start) = stream.scheduled_at else { return Err(ApiError::NotFound("scheduled start")) };
    let seller = state.db.user(&stream.owner_id).await?.map(|u| u.name).unwrap_or_default();
    let watch_url = state.urls.watch(&stream.playback_id);
    let host = state.urls.http.split("://").nth(1).unwrap_or("hawker").split('/').next().unwrap_or("hawker");
    let event = CalendarEvent {
        uid: format!("{}@{host}", stream.id),
        start,
        end: start + chrono::Duration::minutes(CALENDAR_EVENT_MINUTES),
        summary: &stream.title,
        description: &format!(
            "{}Live from {seller}: {watch_url}",
            stream.description.as_deref().map(|d| format!("{d}\n\n")).unwrap_or_default()
        ),
        url: &watch_url,
        cancelled: stream.status == StreamStatus::Cancelled,
    };
    Ok((
        [
            (CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"stream.ics\""),
            (CACHE_CONTROL, "no-cache"),
        ],
        event.render(Utc::now()),
    ))
}

struct CalendarEvent<'a> {
    uid: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    summary: &'a str,
    description: &'a str,
    url: &'a str,
    cancelled: bool,
}

impl CalendarEvent<'_> {
    fn render(&self, now: DateTime<Utc>) -> String {
        let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        let mut lines = vec![
            "BEGIN:VCALENDAR".to_owned(),
            "VERSION:2.0".to_owned(),
            "PRODID:-//hawker//live shopping//EN".to_owned(),
            "CALSCALE:GREGORIAN".to_owned(),
            "METHOD:PUBLISH".to_owned(),
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{}", escape(&self.uid)),
            format!("DTSTAMP:{}", stamp(now)),
            format!("DTSTART:{}", stamp(self.start)),
            format!("DTEND:{}", stamp(self.end)),
            format!("SUMMARY:{}", escape(self.summary)),
            format!("DESCRIPTION:{}", escape(self.description)),
            // A URI value: not TEXT, so not escaped (our URLs have no control characters).
            format!("URL:{}", self.url),
            format!("STATUS:{}", if self.cancelled { "CANCELLED" } else { "CONFIRMED" }),
            "END:VEVENT".to_owned(),
            "END:VCALENDAR".to_owned(),
        ];
        lines.iter_mut().for_each(|line| *line = fold(line));
        lines.join("\r\n") + "\r\n"
    }
}

/// A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped; other
/// control characters dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Content lines longer than 75 octets folded (RFC 5545 3.1): a CRLF and a space, never inside
/// a UTF-8 character.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_folded_on_characters() {
        assert_eq!(escape("a,b;c\\d\ne\r\u{7}"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 75), "{folded:?}");
        assert_eq!(folded.replace("\r\n ", ""), long);
    }
}
