//! Pinned products (shown on the stream, marked in its playlists) and orders the shop
//! attributes to a stream.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiJson;
use super::auth::Caller;
use super::error::ApiError;
use super::streams::{controlled_stream, visible_stream};
use crate::db::{NewPin, OrderCursor, OrderRecorded};
use crate::events::{Event, kind};
use crate::model::{ClipKind, Order, OrderTotals, Pin, Role, Stream, StreamStatus};
use crate::money::{check_currency, format_amount, parse_amount};
use crate::{AppState, Marker, PRODUCT_MARKER_CLASS};

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("{field} must be 1 to {max} characters, without control characters")));
    }
    Ok(())
}

fn check_web_url(field: &str, value: &str) -> Result<(), ApiError> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    let host = rest.and_then(|r| r.split(['/', '?', '#']).next()).unwrap_or("");
    if host.is_empty() || value.len() > 2000 || value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"') {
        return Err(ApiError::BadRequest(format!(
            "{field} must be an http:// or https:// URL of at most 2000 characters"
        )));
    }
    Ok(())
}

// ---- pins ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinProduct {
    product_id: String,
    title: String,
    price: Value,
    currency: String,
    image_url: Option<String>,
    url: Option<String>,
}

/// The DATERANGE of a pin: open while pinned, closed (END-DATE) once unpinned.
pub fn pin_marker(pin: &Pin) -> Marker {
    let mut attributes = vec![
        ("X-PRODUCT-ID".to_owned(), pin.product_id.clone()),
        ("X-TITLE".to_owned(), pin.title.clone()),
        ("X-PRICE".to_owned(), pin.price.clone()),
        ("X-CURRENCY".to_owned(), pin.currency.clone()),
    ];
    if let Some(url) = &pin.url {
        attributes.push(("X-URL".to_owned(), url.clone()));
    }
    if let Some(image_url) = &pin.image_url {
        attributes.push(("X-IMAGE-URL".to_owned(), image_url.clone()));
    }
    Marker {
        id: pin.id.clone(),
        class: PRODUCT_MARKER_CLASS.to_owned(),
        start: pin.pinned_at,
        end: pin.unpinned_at,
        attributes,
    }
}

/// Marks the pin in the playlists. The pin itself stands whatever happens here.
async fn mark(state: &AppState, stream: &Stream, pin: &Pin) {
    if let Err(e) = state.live.add_marker(&stream.id, pin_marker(pin)).await {
        tracing::warn!(stream = %stream.id, pin = %pin.id, "pin not marked in the playlists: {e:#}");
    }
}

/// The seller pins a product on a live stream.
pub async fn pin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PinProduct>,
) -> Result<(StatusCode, Json<Pin>), ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    if !stream.status.is_on_air() {
        return Err(ApiError::Conflict(stream.status));
    }
    check_text("product_id", &body.product_id, 200)?;
    check_text("title", &body.title, 200)?;
    let price = parse_amount(&body.price, "price").map_err(ApiError::BadRequest)?;
    check_currency(&body.currency).map_err(ApiError::BadRequest)?;
    if let Some(url) = &body.image_url {
        check_web_url("image_url", url)?;
    }
    if let Some(url) = &body.url {
        check_web_url("url", url)?;
    }
    let price = format_amount(price);
    let new = NewPin {
        stream_id: &stream.id,
        product_id: body.product_id.trim(),
        title: body.title.trim(),
        price: &price,
        currency: &body.currency,
        image_url: body.image_url.as_deref(),
        url: body.url.as_deref(),
    };
    let Some(pin) = state.db.insert_pin(new).await? else {
        return Err(ApiError::Exists("this product is already pinned on the stream".into()));
    };
    // Viewers see the pin at once; its marker follows once the packager's writer takes it.
    state.events.publish(Event::new(kind::PIN, &stream.id, json!({ "pin": pin })));
    mark(&state, &stream, &pin).await;
    Ok((StatusCode::CREATED, Json(pin)))
}

/// The seller unpins a product: its pin gets `unpinned_at`, its marker an END-DATE.
pub async fn unpin(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, product_id)): Path<(String, String)>,
) -> Result<Json<Pin>, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    let Some(pin) = state.db.unpin(&stream.id, &product_id).await? else {
        return Err(ApiError::NotFound("pinned product"));
    };
    state.events.publish(Event::new(kind::UNPIN, &stream.id, json!({ "pin": pin })));
    if stream.status.is_on_air() {
        mark(&state, &stream, &pin).await;
    }
    Ok(Json(pin))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinsQuery {
    /// Also the unpinned ones (for a replay's timeline).
    all: Option<bool>,
}

#[derive(Serialize)]
pub struct PinList {
    pins: Vec<Pin>,
}

pub async fn list_pins(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
    query: Result<Query<PinsQuery>, QueryRejection>,
) -> Result<Json<PinList>, ApiError> {
    let Query(query) = query?;
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    Ok(Json(PinList { pins: state.db.pins(&stream.id, query.all.unwrap_or(false)).await? }))
}

// ---- orders ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportOrder {
    order_id: String,
    product_id: String,
    quantity: i64,
    /// The order line's total, e.g. 39.98.
    amount: Value,
    currency: String,
}

#[derive(Serialize)]
pub struct OrderView {
    order_id: String,
    stream_id: String,
    product_id: String,
    quantity: i64,
    amount: String,
    currency: String,
    created_at: DateTime<Utc>,
    /// The live edge's program date-time when the order came (the stream on air here).
    media_time: Option<DateTime<Utc>>,
    /// Its video receipt: a clip (HLS) of the 30 s before `media_time`, made just after the
    /// order came; listed orders only (null until made, and without a media time).
    receipt_url: Option<String>,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.order_id,
            stream_id: o.stream_id,
            product_id: o.product_id,
            quantity: o.quantity,
            amount: format_amount(o.amount_e4),
            currency: o.currency,
            created_at: o.created_at,
            media_time: o.media_time,
            receipt_url: None,
        }
    }
}

pub const MAX_QUANTITY: i64 = 1_000_000;

/// The shop reports an order attributed to the stream: 201 the first time, 200 with the
/// stored order when the same order comes again, 409 when its id names a different order.
pub async fn report_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReportOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    if !matches!(caller.0.role, Role::Shop | Role::Admin) {
        return Err(ApiError::Forbidden("only the shop reports orders"));
    }
    let stream = state.db.stream(&id).await?.ok_or(ApiError::NotFound("stream"))?;
    // Cancelled and deleted streams are gone for everyone.
    if !matches!(
        stream.status,
        StreamStatus::Scheduled | StreamStatus::Live | StreamStatus::Reconnecting | StreamStatus::Archived
    ) {
        return Err(ApiError::NotFound("stream"));
    }
    if caller.0.role == Role::Shop && !state.db.shop_sells_for(&caller.0.id, &stream.owner_id).await? {
        return Err(ApiError::Forbidden("this shop is not linked to the stream's seller (an admin links them)"));
    }
    if let Err(wait) = state.engagement.allow_order(&caller.0.id, Instant::now()) {
        let message = format!("at most {} orders per minute per shop", crate::engagement::ORDERS_PER_MINUTE);
        return Err(ApiError::TooManyRequests(message, wait));
    }
    check_text("order_id", &body.order_id, 200)?;
    check_text("product_id", &body.product_id, 200)?;
    if !(1..=MAX_QUANTITY).contains(&body.quantity) {
        return Err(ApiError::BadRequest(format!("quantity must be 1 to {MAX_QUANTITY}")));
    }
    let amount_e4 = parse_amount(&body.amount, "amount").map_err(ApiError::BadRequest)?;
    check_currency(&body.currency).map_err(ApiError::BadRequest)?;
    let order = Order {
        order_id: body.order_id.trim().to_owned(),
        stream_id: stream.id.clone(),
        product_id: body.product_id.trim().to_owned(),
        quantity: body.quantity,
        amount_e4,
        currency: body.currency,
        created_at: Utc::now(),
        // Known where the stream is packaged (with several nodes: on the node holding it).
        media_time: if stream.status.is_on_air() { state.hls.live_edge(&stream.id) } else { None },
    };
    match state.db.record_order(&caller.0.id, &order).await? {
        OrderRecorded::Created(order) => {
            let totals = state.db.order_totals(&stream.id).await?;
            let mut event = totals_json(&totals, false);
            crate::clips::receipt_later(&state, &stream, &caller.0.id, &order);
            let view = OrderView::from(order);
            // Orders events go to the seller's sockets only: the new order rides along.
            event["order"] = json!(view);
            state.events.publish(Event::new(kind::ORDERS, &stream.id, event));
            Ok((StatusCode::CREATED, Json(view)))
        }
        OrderRecorded::Repeated(order) => Ok((StatusCode::OK, Json(order.into()))),
        OrderRecorded::Mismatch(_) => {
            Err(ApiError::Exists("order_id was already reported with different details".into()))
        }
    }
}

/// Orders a page of the seller's order list holds at most, and by default.
pub const MAX_ORDER_PAGE: i64 = 200;
const DEFAULT_ORDER_PAGE: i64 = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    /// `next_before` of the previous page.
    before: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct OrdersPage {
    /// Newest first.
    orders: Vec<OrderView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<String>,
}

/// The opaque `before` of the order list: base64url of `[created_at, shop_id, order_id]`.
fn encode_cursor(cursor: &OrderCursor) -> String {
    use base64::Engine;
    let json = json!([cursor.created_at, cursor.shop_id, cursor.order_id]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(text: &str) -> Result<OrderCursor, ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("before must be the next_before of a previous page".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let (created_at, shop_id, order_id): (DateTime<Utc>, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(OrderCursor { created_at, shop_id, order_id })
}

/// The seller's orders of a stream, newest first, a page at a time (owner and admins).
pub async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<Json<OrdersPage>, ApiError> {
    let Query(query) = query?;
    let stream = controlled_stream(&state, &id, &caller).await?;
    let limit = query.limit.unwrap_or(DEFAULT_ORDER_PAGE);
    if !(1..=MAX_ORDER_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_ORDER_PAGE}")));
    }
    let before = query.before.as_deref().map(decode_cursor).transpose()?;
    let mut rows = state.db.orders_page(&stream.id, before.as_ref(), limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = more.then(|| rows.last().map(|(cursor, _)| encode_cursor(cursor))).flatten();
    let order_ref = |cursor: &OrderCursor| format!("{}/{}", cursor.shop_id, cursor.order_id);
    let refs: Vec<String> = rows.iter().map(|(cursor, _)| order_ref(cursor)).collect();
    let receipts: HashMap<String, String> = state
        .db
        .receipts(&stream.id, &refs)
        .await?
        .into_iter()
        .filter_map(|clip| match clip.kind {
            ClipKind::Receipt { order_ref } => {
                Some((order_ref, state.urls.media(&stream.playback_id, &clip.playlist_path)))
            }
            _ => None,
        })
        .collect();
    let orders = rows
        .into_iter()
        .map(|(cursor, order)| OrderView { receipt_url: receipts.get(&order_ref(&cursor)).cloned(), ..order.into() })
        .collect();
    Ok(Json(OrdersPage { orders, next_before }))
}

// ---- shops and the sellers they sell for ----

#[derive(Serialize)]
pub struct SellerRef {
    id: String,
    name: String,
}

#[derive(Serialize)]
pub struct ShopSellers {
    sellers: Vec<SellerRef>,
}

/// The shop and seller of a link, checked: 404 unless they are a shop and a seller.
async fn link_ends(state: &AppState, caller: &Caller, shop_id: &str, seller_id: Option<&str>) -> Result<(), ApiError> {
    if caller.0.role != Role::Admin {
        return Err(ApiError::Forbidden("only admins link shops and sellers"));
    }
    if !state.db.user(shop_id).await?.is_some_and(|u| u.role == Role::Shop) {
        return Err(ApiError::NotFound("shop"));
    }
    if let Some(seller_id) = seller_id
        && !state.db.user(seller_id).await?.is_some_and(|u| u.role == Role::Seller)
    {
        return Err(ApiError::NotFound("seller"));
    }
    Ok(())
}

/// `PUT /shops/{shop_id}/sellers/{seller_id}` (admin): the shop may report orders to the
/// seller's streams from now on. Idempotent.
pub async fn link_seller(
    State(state): State<AppState>,
    caller: Caller,
    Path((shop_id, seller_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    link_ends(&state, &caller, &shop_id, Some(&seller_id)).await?;
    if state.db.link_shop(&shop_id, &seller_id).await? {
        tracing::info!(shop = %shop_id, seller = %seller_id, by = %caller.0.id, "shop linked to seller");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /shops/{shop_id}/sellers/{seller_id}` (admin).
pub async fn unlink_seller(
    State(state): State<AppState>,
    caller: Caller,
    Path((shop_id, seller_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    link_ends(&state, &caller, &shop_id, None).await?;
    if !state.db.unlink_shop(&shop_id, &seller_id).await? {
        return Err(ApiError::NotFound("link"));
    }
    tracing::info!(shop = %shop_id, seller = %seller_id, by = %caller.0.id, "shop unlinked from seller");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /shops/{shop_id}/sellers`: admins, and the shop itself.
pub async fn list_sellers(
    State(state): State<AppState>,
    caller: Caller,
    Path(shop_id): Path<String>,
) -> Result<Json<ShopSellers>, ApiError> {
    if caller.0.id != shop_id {
        link_ends(&state, &caller, &shop_id, None).await?;
    }
    let sellers = state.db.shop_sellers(&shop_id).await?;
    Ok(Json(ShopSellers { sellers: sellers.into_iter().map(|u| SellerRef { id: u.id, name: u.name }).collect() }))
}

/// Order totals as JSON: `{orders, units, revenue: [{currency, amount}]}`, with `products`
/// (per product and currency) when asked.
pub fn totals_json(totals: &OrderTotals, products: bool) -> Value {
    let revenue: Vec<Value> = totals
        .revenue
        .iter()
        .map(|(currency, e4)| json!({ "currency": currency, "amount": format_amount(*e4) }))
        .collect();
    let mut out = json!({ "orders": totals.orders, "units": totals.units, "revenue": revenue });
    if products {
        out["products"] = totals
            .products
            .iter()
            .map(|p| {
                json!({
                    "product_id": p.product_id, "currency": p.currency, "orders": p.orders,
                    "units": p.units, "revenue": format_amount(p.revenue_e4),
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_a_product_daterange() {
        let pin = Pin {
            id: "pin1".into(),
            stream_id: "s".into(),
            product_id: "sku-1".into(),
            title: "Red".into(),
            price: "19.99".into(),
            currency: "EUR".into(),
            image_url: None,
            url: Some("https://shop.example/sku-1".into()),
            pinned_at: Utc::now(),
            unpinned_at: None,
        };
        let marker = pin_marker(&pin);
        assert_eq!((marker.id.as_str(), marker.class.as_str(), marker.end), ("pin1", PRODUCT_MARKER_CLASS, None));
        let names: Vec<_> = marker.attributes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-PRODUCT-ID", "X-TITLE", "X-PRICE", "X-CURRENCY", "X-URL"]);
        let closed = pin_marker(&Pin { unpinned_at: Some(pin.pinned_at), ..pin });
        assert!(closed.end.is_some());
    }
}
