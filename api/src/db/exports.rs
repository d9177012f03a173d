//! Claims on MP4 exports, so that one node makes each file.

use super::*;

impl Db {
    /// Claims the export `name` for this node until `until`: false while another node holds
    /// an unexpired claim on it.
    pub async fn claim_export(&self, name: &str, until: DateTime<Utc>) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO export_claims (name, node, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET node = $2, expires_at = $3 \
                 WHERE export_claims.node = $2 OR export_claims.expires_at < $4",
            )
            .bind(name)
            .bind(self.node())
            .bind(ts(until))
            .bind(ts(Utc::now()))
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Gives this node's claim on `name` back.
    pub async fn release_export(&self, name: &str) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM export_claims WHERE name = $1 AND node = $2")
                .bind(name)
                .bind(self.node())
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
