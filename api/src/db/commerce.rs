//! Commerce: pinned products and the orders attributed to streams.

use super::*;

const ORDER_COLUMNS: &str = "order_id, stream_id, product_id, quantity, amount_e4, currency, created_at, media_time";

fn order_from_row(row: &impl RowExt) -> DbResult<Order> {
    Ok(Order {
        order_id: row.text("order_id")?,
        stream_id: row.text("stream_id")?,
        product_id: row.text("product_id")?,
        quantity: row.int("quantity")?,
        amount_e4: row.int("amount_e4")?,
        currency: row.text("currency")?,
        created_at: row.time("created_at")?,
        media_time: row.time_opt("media_time")?,
    })
}

/// Where a page of a stream's orders ends: the orders after it are older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCursor {
    pub created_at: DateTime<Utc>,
    pub shop_id: String,
    pub order_id: String,
}

/// A pin as the API creates it.
pub struct NewPin<'a> {
    pub stream_id: &'a str,
    pub product_id: &'a str,
    pub title: &'a str,
    pub price: &'a str,
    pub currency: &'a str,
    pub image_url: Option<&'a str>,
    pub url: Option<&'a str>,
}

/// How recording an order went.
#[derive(Debug, PartialEq, Eq)]
pub enum OrderRecorded {
    /// A new order.
    Created(Order),
    /// The same order again: nothing changed.
    Repeated(Order),
    /// The order id is taken by a different order.
    Mismatch(Order),
}

const PIN_COLUMNS: &str = "id, stream_id, product_id, title, price, currency, image_url, url, pinned_at, unpinned_at";

fn pin_from_row(row: &impl RowExt) -> DbResult<Pin> {
    Ok(Pin {
        id: row.text("id")?,
        stream_id: row.text("stream_id")?,
        product_id: row.text("product_id")?,
        title: row.text("title")?,
        price: row.text("price")?,
        currency: row.text("currency")?,
        image_url: row.text_opt("image_url")?,
        url: row.text_opt("url")?,
        pinned_at: row.time("pinned_at")?,
        unpinned_at: row.time_opt("unpinned_at")?,
    })
}

impl Db {
    /// Pins a product; `None` when that product is already pinned on the stream.
    pub async fn insert_pin(&self, new: NewPin<'_>) -> DbResult<Option<Pin>> {
        on_pool!(self, pool => {
            let sql = format!(
                "INSERT INTO pins (id, stream_id, product_id, title, price, currency, image_url, url, pinned_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING {PIN_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(secrets::new_id())
                .bind(new.stream_id)
                .bind(new.product_id)
                .bind(new.title)
                .bind(new.price)
                .bind(new.currency)
                .bind(new.image_url)
                .bind(new.url)
                .bind(Ts::now())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(pin_from_row).transpose()
        })
    }

    /// Ends the product's active pin; `None` when it was not pinned.
    pub async fn unpin(&self, stream_id: &str, product_id: &str) -> DbResult<Option<Pin>> {
        on_pool!(self, pool => {
            let sql = format!(
                "UPDATE pins SET unpinned_at = $1 WHERE stream_id = $2 AND product_id = $3 AND unpinned_at IS NULL \
                 RETURNING {PIN_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(Ts::now())
                .bind(stream_id)
                .bind(product_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(pin_from_row).transpose()
        })
    }

    /// The stream's pins in pin order; only the active ones unless `all`.
    pub async fn pins(&self, stream_id: &str, all: bool) -> DbResult<Vec<Pin>> {
        on_pool!(self, pool => {
            let filter = if all { "" } else { " AND unpinned_at IS NULL" };
            let sql = format!("SELECT {PIN_COLUMNS} FROM pins WHERE stream_id = $1{filter} ORDER BY pinned_at, id");
            let rows = sqlx::query(&sql).bind(stream_id).fetch_all(pool).await?;
            rows.iter().map(pin_from_row).collect()
        })
    }

    /// Records an order once per (shop, order id).
    pub async fn record_order(&self, shop_id: &str, order: &Order) -> DbResult<OrderRecorded> {
        on_pool!(self, pool => {
            let inserted = sqlx::query(
                "INSERT INTO orders (shop_id, order_id, stream_id, product_id, quantity, amount_e4, currency, created_at, \
                 media_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (shop_id, order_id) DO NOTHING",
            )
            .bind(shop_id)
            .bind(&order.order_id)
            .bind(&order.stream_id)
            .bind(&order.product_id)
            .bind(order.quantity)
            .bind(order.amount_e4)
            .bind(&order.currency)
            .bind(ts(order.created_at))
            .bind(order.media_time.map(ts))
            .execute(pool)
            .await?;
            let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE shop_id = $1 AND order_id = $2");
            let row = sqlx::query(&sql).bind(shop_id).bind(&order.order_id).fetch_one(pool).await?;
            let stored = order_from_row(&row)?;
            if inserted.rows_affected() > 0 {
                return Ok(OrderRecorded::Created(stored));
            }
            let same = (&stored.stream_id, &stored.product_id, stored.quantity, stored.amount_e4, &stored.currency)
                == (&order.stream_id, &order.product_id, order.quantity, order.amount_e4, &order.currency);
            Ok(if same { OrderRecorded::Repeated(stored) } else { OrderRecorded::Mismatch(stored) })
        })
    }

    /// A stream's orders, newest first: `limit` of them, older than `before` if given.
    pub async fn orders_page(
        &self,
        stream_id: &str,
        before: Option<&OrderCursor>,
        limit: i64,
    ) -> DbResult<Vec<(OrderCursor, Order)>> {
        let older = match before {
            Some(_) => "AND (created_at, shop_id, order_id) < ($3, $4, $5)",
            None => "",
        };
        let sql = format!(
            "SELECT shop_id, {ORDER_COLUMNS} FROM orders WHERE stream_id = $1 {older} \
             ORDER BY created_at DESC, shop_id DESC, order_id DESC LIMIT $2"
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query(&sql).bind(stream_id).bind(limit);
            if let Some(cursor) = before {
                query = query.bind(ts(cursor.created_at)).bind(&cursor.shop_id).bind(&cursor.order_id);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let order = order_from_row(row)?;
                    let cursor = OrderCursor {
                        created_at: order.created_at,
                        shop_id: row.text("shop_id")?,
                        order_id: order.order_id.clone(),
                    };
                    Ok((cursor, order))
                })
                .collect()
        })
    }

    pub async fn order_totals(&self, stream_id: &str) -> DbResult<OrderTotals> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                // An amount is at most 10^13 (×10^4): SUM over amounts overflows i64 after some
                // 900,000 orders, SUM over whole units and fractions apart only after 10^9.
                // PostgreSQL sums BIGINTs as NUMERIC: the casts keep both databases' sums i64.
                "SELECT product_id, currency, COUNT(*) AS orders, CAST(SUM(quantity) AS BIGINT) AS units, \
                 CAST(SUM(amount_e4 / 10000) AS BIGINT) AS revenue_units, \
                 CAST(SUM(amount_e4 % 10000) AS BIGINT) AS revenue_e4_rest \
                 FROM orders WHERE stream_id = $1 GROUP BY product_id, currency ORDER BY product_id, currency",
            )
            .bind(stream_id)
            .fetch_all(pool)
            .await?;
            let mut totals = OrderTotals::default();
            for row in rows {
                let product = ProductTotal {
                    product_id: row.try_get("product_id")?,
                    currency: row.try_get("currency")?,
                    orders: row.try_get("orders")?,
                    units: row.try_get("units")?,
                    revenue_e4: i128::from(row.try_get::<i64, _>("revenue_units")?) * 10_000
                        + i128::from(row.try_get::<i64, _>("revenue_e4_rest")?),
                };
                totals.orders += product.orders;
                totals.units += product.units;
                match totals.revenue.iter_mut().find(|(c, _)| *c == product.currency) {
                    Some((_, sum)) => *sum += product.revenue_e4,
                    None => totals.revenue.push((product.currency.clone(), product.revenue_e4)),
                }
                totals.products.push(product);
            }
            totals.revenue.sort();
            Ok(totals)
        })
    }
}
