//! The repository: every SQL statement hawker runs, on SQLite (one machine, the default) or
//! PostgreSQL (several nodes), split by aggregate. The SQL is written once where it is
//! portable (`$n` placeholders, RETURNING, `ON CONFLICT`, CHECK constraints) and runs on a
//! typed pool of either database (not `sqlx::Any`, which cannot decode SQLite booleans or
//! PostgreSQL timestamps); the few statements that differ sit side by side. Both schemas
//! (`migrations/sqlite/`, `migrations/postgres/`) have the same tables and columns, and every
//! repository test runs on both.

mod clips;
mod commerce;
mod engagement;
mod exports;
mod nodes;
mod outbox;
mod reminders;
mod settings;
mod streams;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgTypeInfo, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteArgumentValue, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteTypeInfo,
};

pub use commerce::{NewPin, OrderCursor, OrderRecorded};
pub use nodes::{NODE_STALE, ViewerTotals};
pub use outbox::OutboxEntry;
pub use reminders::{MAX_REMIND_MINUTES, ReminderMoment, ShopSubscriber};
pub use streams::{LEASE, NewStream, Page};

use crate::model::{
    ChatMessage, ChatUser, Clip, ClipKind, Order, OrderTotals, Pin, ProductTotal, PublishDenied, PublishTicket,
    RefusalReason, Role, Stream, StreamStatus, Transition, Trigger, User, ViewerCounters,
};
use crate::playback::{Playback, PlaybackIndex};
use crate::secrets;
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("{0} needs PostgreSQL")]
    NeedsPostgres(&'static str),
}

pub type DbResult<T> = Result<T, DbError>;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// What settings never stored by an admin are: the server's configuration.
    setting_defaults: Arc<Settings>,
    /// Playable streams by playback id, kept current by every status change applied here.
    playback: PlaybackIndex,
    /// This node's name among the nodes sharing the database: it holds the leases of the
    /// streams published to it.
    node: Arc<str>,
    /// Settings saved through this handle so far: a reader that keeps settings knows when
    /// they changed here.
    settings_saved: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the typed pool: the same code, compiled once per
/// database, so each query is typed for the database it runs on.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
use on_pool;

impl Db {
    /// Opens (creating if needed) the SQLite file. WAL and a busy timeout let a CLI command
    /// write while a server runs on the same file.
    pub async fn open(path: &Path) -> DbResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // A connection to a local file does not go stale: no ping before each query (a round
        // trip to the connection's thread).
        let pool = SqlitePoolOptions::new().max_connections(8).test_before_acquire(false).connect_with(options).await?;
        Ok(Self::with_pool(Pool::Sqlite(pool)))
    }

    /// Connects to PostgreSQL: `postgres://user:password@host:port/database`.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::with_pool(Pool::Postgres(pool)))
    }

    fn with_pool(pool: Pool) -> Self {
        Self {
            pool,
            setting_defaults: Arc::new(Settings::default()),
            playback: PlaybackIndex::default(),
            node: secrets::new_id().into(),
            settings_saved: Arc::default(),
        }
    }

    /// Which database this is, for logs: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Names this node among the nodes sharing the database (see [`Db::node`]).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.into();
        self
    }

    /// This node's name among the nodes sharing the database: random unless set.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether several nodes may share the database (PostgreSQL); SQLite is one machine's.
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (LISTEN/NOTIFY between nodes).
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool.clone()),
            Pool::Sqlite(_) => None,
        }
    }

    /// Settings an admin has not set take these values (the server's own configuration).
    pub fn with_setting_defaults(mut self, defaults: Settings) -> Self {
        self.setting_defaults = Arc::new(defaults);
        self
    }

    /// Answers when the database does (readiness).
    pub async fn ping(&self) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    pub async fn migrate(&self) -> DbResult<()> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// The same database seen from another node.
    #[cfg(test)]
    fn as_other_node(&self) -> Self {
        Self { node: secrets::new_id().into(), playback: PlaybackIndex::default(), ..self.clone() }
    }

    /// The statement for this database, where the two differ.
    fn dialect<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.pool {
            Pool::Sqlite(_) => sqlite,
            Pool::Postgres(_) => postgres,
        }
    }
}

/// A point in time as each database stores it: TIMESTAMPTZ on PostgreSQL; on SQLite, RFC 3339
/// UTC text of one fixed width (microseconds), so that text order is time order (sqlx's own
/// encoding varies the number of fractional digits). Both decode as `DateTime<Utc>`.
#[derive(Debug, Clone, Copy)]
struct Ts(DateTime<Utc>);

impl Ts {
    fn now() -> Self {
        Self(Utc::now())
    }
}

/// `$first, …`: the placeholders of an `IN (…)` list of `n` values, numbered from `first`
/// (after the query's other parameters).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn ts(at: DateTime<Utc>) -> Ts {
    Ts(at)
}

impl sqlx::Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let text = self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        <String as sqlx::Encode<'q, Sqlite>>::encode(text, buf)
    }
}

impl sqlx::Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as sqlx::Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// Typed column reads shared by both databases' rows, so that a row maps to a model in one
/// function.
trait RowExt {
    fn text(&self, column: &str) -> DbResult<String>;
    fn text_opt(&self, column: &str) -> DbResult<Option<String>>;
    fn int(&self, column: &str) -> DbResult<i64>;
    fn int_opt(&self, column: &str) -> DbResult<Option<i64>>;
    fn time(&self, column: &str) -> DbResult<DateTime<Utc>>;
    fn time_opt(&self, column: &str) -> DbResult<Option<DateTime<Utc>>>;
    fn flag(&self, column: &str) -> DbResult<bool>;
}

macro_rules! row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &str) -> DbResult<String> {
                Ok(self.try_get(column)?)
            }
            fn text_opt(&self, column: &str) -> DbResult<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> DbResult<i64> {
                Ok(self.try_get(column)?)
            }
            fn int_opt(&self, column: &str) -> DbResult<Option<i64>> {
                Ok(self.try_get(column)?)
            }
            fn time(&self, column: &str) -> DbResult<DateTime<Utc>> {
                Ok(self.try_get(column)?)
            }
            fn time_opt(&self, column: &str) -> DbResult<Option<DateTime<Utc>>> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> DbResult<bool> {
                Ok(self.try_get(column)?)
            }
        }
    };
}
row_ext!(SqliteRow);
row_ext!(PgRow);

#[cfg(test)]
#[path = "../../../tests/common/postgres.rs"]
pub(crate) mod test_postgres;
#[cfg(test)]
mod tests;
