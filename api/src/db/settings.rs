//! The admin settings.

use super::*;

impl Db {
    /// The admin settings; defaults for any never set.
    pub async fn settings(&self) -> DbResult<Settings> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT name, value FROM settings").fetch_all(pool).await?;
            let mut stored = serde_json::Map::new();
            for row in rows {
                let value: String = row.try_get("value")?;
                let value = serde_json::from_str(&value).map_err(|e| DbError::Corrupt(format!("setting: {e}")))?;
                stored.insert(row.try_get("name")?, value);
            }
            Settings::from_stored(&self.setting_defaults, stored).map_err(|e| DbError::Corrupt(format!("settings: {e}")))
        })
    }

    pub async fn save_settings(&self, settings: &Settings) -> DbResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (name, value) in settings.to_stored() {
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
                )
                .bind(name)
                .bind(value.to_string())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, DbError>(())
        })?;
        self.settings_saved.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Counts the settings saved on this node: a reader that keeps settings re-reads them
    /// when it changes (other nodes' saves it sees when it re-reads anyway).
    pub fn settings_saved(&self) -> u64 {
        self.settings_saved.load(Ordering::Acquire)
    }
}
