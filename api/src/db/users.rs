//! Users, their roles and tokens, and which sellers a shop sells for.

use super::*;

fn user_from_row(row: &impl RowExt) -> DbResult<User> {
    let role: String = row.text("role")?;
    Ok(User {
        id: row.text("id")?,
        name: row.text("name")?,
        role: Role::parse(&role).ok_or_else(|| DbError::Corrupt(format!("role {role}")))?,
    })
}

impl Db {
    /// Creates a user and returns it with its API token (shown once, stored as a digest).
    pub async fn create_user(&self, name: &str, role: Role) -> DbResult<(User, String)> {
        on_pool!(self, pool => {
            let token = secrets::new_api_token();
            let user = User { id: secrets::new_id(), name: name.to_owned(), role };
            sqlx::query("INSERT INTO users (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&user.id)
                .bind(&user.name)
                .bind(role.as_str())
                .bind(secrets::digest(&token))
                .bind(Ts::now())
                .execute(pool)
                .await?;
            Ok((user, token))
        })
    }

    /// The user of an API token or of an unexpired viewer token.
    pub async fn user_by_token(&self, token: &str) -> DbResult<Option<User>> {
        on_pool!(self, pool => {
            let digest = secrets::digest(token);
            let row = sqlx::query(
                "SELECT id, name, role FROM users WHERE token_hash = $1 \
                 AND (token_expires_at IS NULL OR token_expires_at > $2) \
                 UNION ALL \
                 SELECT u.id, u.name, u.role FROM viewer_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.expires_at > $2",
            )
            .bind(digest)
            .bind(Ts::now())
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// The viewer standing for the shop's user `external_id`, made on first sight; its name
    /// follows the shop's latest `name`.
    pub async fn shop_viewer(&self, shop_id: &str, external_id: &str, name: &str) -> DbResult<User> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "INSERT INTO users (id, name, role, token_hash, created_at, shop_id, external_id) \
                 VALUES ($1, $2, 'viewer', $3, $4, $5, $6) \
                 ON CONFLICT (shop_id, external_id) DO UPDATE SET name = excluded.name \
                 RETURNING id, name, role",
            )
            .bind(secrets::new_id())
            .bind(name)
            .bind(secrets::digest(&secrets::new_api_token()))
            .bind(Ts::now())
            .bind(shop_id)
            .bind(external_id)
            .fetch_one(pool)
            .await?;
            user_from_row(&row)
        })
    }

    /// A guest viewer: signed in by name only, with no token of its own.
    pub async fn create_guest(&self, name: &str) -> DbResult<User> {
        on_pool!(self, pool => {
            let user = User { id: secrets::new_id(), name: name.to_owned(), role: Role::Viewer };
            sqlx::query(
                "INSERT INTO users (id, name, role, token_hash, created_at, guest) VALUES ($1, $2, 'viewer', $3, $4, TRUE)",
            )
            .bind(&user.id)
            .bind(&user.name)
            .bind(secrets::digest(&secrets::new_api_token()))
            .bind(Ts::now())
            .execute(pool)
            .await?;
            Ok(user)
        })
    }

    /// A new token for a viewer, valid until `expires_at`; expired tokens are swept here.
    pub async fn issue_viewer_token(&self, user_id: &str, expires_at: DateTime<Utc>) -> DbResult<String> {
        on_pool!(self, pool => {
            let token = secrets::new_api_token();
            let now = Ts::now();
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM viewer_tokens WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO viewer_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(secrets::digest(&token))
                .bind(user_id)
                .bind(now)
                .bind(ts(expires_at))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(token)
        })
    }

    pub async fn count_users(&self) -> DbResult<i64> {
        on_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?)
        })
    }

    pub async fn user(&self, id: &str) -> DbResult<Option<User>> {
        on_pool!(self, pool => {
            let row =
                sqlx::query("SELECT id, name, role FROM users WHERE id = $1").bind(id).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// The users with these ids, each with whether it is a guest (signed in by name only).
    pub async fn users_with_guest_flag(&self, ids: &[String]) -> DbResult<Vec<(User, bool)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, name, role, guest FROM users WHERE id IN ({}) ORDER BY name",
            placeholders(1, ids.len())
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query(&sql);
            for id in ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(|row| Ok((user_from_row(row)?, row.try_get::<bool, _>("guest")?))).collect()
        })
    }

    /// Whether `name` is an admin's or the given seller's (case and surrounding space aside):
    /// names nobody else may chat under.
    pub async fn is_reserved_name(&self, name: &str, seller_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT 1 FROM users WHERE lower(trim(name)) = lower(trim($1)) AND (role = 'admin' OR id = $2) LIMIT 1",
            )
            .bind(name)
            .bind(seller_id)
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    /// A new API token for the user (the old one stops working at once), valid until
    /// `expires_at` (`None`: no expiry); `None` for an unknown user.
    pub async fn rotate_token(&self, user_id: &str, expires_at: Option<DateTime<Utc>>) -> DbResult<Option<String>> {
        on_pool!(self, pool => {
            let token = secrets::new_api_token();
            let done = sqlx::query("UPDATE users SET token_hash = $1, token_expires_at = $2 WHERE id = $3")
                .bind(secrets::digest(&token))
                .bind(expires_at.map(ts))
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok((done.rows_affected() == 1).then_some(token))
        })
    }

    /// Every token of the user stops working: its API token (replaced by one nobody has) and
    /// its viewer tokens. False for an unknown user.
    pub async fn revoke_tokens(&self, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE users SET token_hash = $1, token_expires_at = NULL WHERE id = $2")
                .bind(secrets::digest(&secrets::new_api_token()))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM viewer_tokens WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The user's API token expiry (`None`: never) and its live viewer tokens' expiries,
    /// soonest first; `None` for an unknown user. Tokens themselves are never stored.
    pub async fn token_expiries(&self, user_id: &str) -> DbResult<Option<(Option<DateTime<Utc>>, Vec<DateTime<Utc>>)>> {
        on_pool!(self, pool => {
            let Some(row) = sqlx::query("SELECT token_expires_at FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await?
            else {
                return Ok(None);
            };
            let api: Option<DateTime<Utc>> = row.try_get("token_expires_at")?;
            let viewer: Vec<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT expires_at FROM viewer_tokens WHERE user_id = $1 AND expires_at > $2 ORDER BY expires_at",
            )
            .bind(user_id)
            .bind(Ts::now())
            .fetch_all(pool)
            .await?;
            Ok(Some((api, viewer)))
        })
    }

    /// Guests whose every token has expired and who left nothing behind (no chat message,
    /// reaction, mute, or reminder of a stream still to come): deleted. Returns how many.
    pub async fn purge_guests(&self) -> DbResult<u64> {
        on_pool!(self, pool => {
            // Guests' reminders of streams no longer scheduled have done their work.
            sqlx::query(
                "DELETE FROM stream_reminders WHERE user_id IN (SELECT id FROM users WHERE guest = TRUE) \
                 AND stream_id IN (SELECT id FROM streams WHERE status <> 'scheduled')",
            )
            .execute(pool)
            .await?;
            let done = sqlx::query(
                "DELETE FROM users WHERE guest = TRUE \
                 AND NOT EXISTS (SELECT 1 FROM viewer_tokens t WHERE t.user_id = users.id AND t.expires_at > $1) \
                 AND created_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.user_id = users.id) \
                 AND NOT EXISTS (SELECT 1 FROM reactions r WHERE r.user_id = users.id) \
                 AND NOT EXISTS (SELECT 1 FROM chat_mutes c WHERE c.user_id = users.id) \
                 AND NOT EXISTS (SELECT 1 FROM stream_reminders s WHERE s.user_id = users.id)",
            )
            .bind(Ts::now())
            .bind(ts(Utc::now() - chrono::Duration::days(1)))
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM viewer_tokens WHERE expires_at <= $1")
                .bind(Ts::now())
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Admins, sellers and shops (not viewers), oldest first.
    pub async fn staff_users(&self) -> DbResult<Vec<User>> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, name, role FROM users WHERE role IN ('admin', 'seller', 'shop') ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(user_from_row).collect()
        })
    }

    /// Links a shop to a seller it sells for; false when already linked.
    pub async fn link_shop(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO shop_sellers (shop_id, seller_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (shop_id, seller_id) DO NOTHING",
            )
            .bind(shop_id)
            .bind(seller_id)
            .bind(Ts::now())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// False when they were not linked.
    pub async fn unlink_shop(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM shop_sellers WHERE shop_id = $1 AND seller_id = $2")
                .bind(shop_id)
                .bind(seller_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    pub async fn shop_sells_for(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT 1 FROM shop_sellers WHERE shop_id = $1 AND seller_id = $2")
                .bind(shop_id)
                .bind(seller_id)
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    /// The sellers a shop is linked to, by name.
    pub async fn shop_sellers(&self, shop_id: &str) -> DbResult<Vec<User>> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT u.id, u.name, u.role FROM shop_sellers l JOIN users u ON u.id = l.seller_id \
                 WHERE l.shop_id = $1 ORDER BY u.name, u.id",
            )
            .bind(shop_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(user_from_row).collect()
        })
    }
}
