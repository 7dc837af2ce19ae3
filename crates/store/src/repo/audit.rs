//! The append-only, hash-chained audit log (R-16).
//!
//! Each organisation's events form one chain (events with no organisation, such as a failed
//! login for an unknown e-mail, form the `platform` chain). Every event stores the hash of
//! its predecessor and its own hash = SHA-256 over a canonical encoding of its stored
//! fields, so editing, deleting or reordering a row is detected by `verify`. The chain head
//! row is updated first in the appending transaction, which serialises concurrent appends
//! to one chain on both engines.

use crate::entities::{audit_chain_head as head, audit_event as event};
use crate::error::StoreError;
use assay_core::{OrgCtx, OrgId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement,
};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Chain of events that belong to no organisation.
pub const PLATFORM_CHAIN: &str = "platform";

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    ApiKey(String),
    System,
    Anonymous,
}

impl Actor {
    /// (`user` / `api_key` / `system` / `anonymous`, the id where there is one): how every
    /// table that names who did something stores it.
    pub(crate) fn parts(&self) -> (&'static str, Option<String>) {
        match self {
            Actor::User(id) => ("user", Some(id.to_string())),
            Actor::ApiKey(id) => ("api_key", Some(id.clone())),
            Actor::System => ("system", None),
            Actor::Anonymous => ("anonymous", None),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// An event to record. Request facts (ip, user agent, request id) come from the API layer.
#[derive(Clone, Debug)]
pub struct NewAuditEvent {
    pub org_id: Option<OrgId>,
    pub actor: Actor,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: AuditDetails,
}

/// An event's details: a JSON object, serialised once where the event is made. The chain
/// hashes and stores the text and nothing reads the tree again, so a hot caller (the AI
/// pipeline, once per call) serialises a typed struct straight to text with [`Self::of`]
/// instead of building a `Value` on the request path for the writer to turn into text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditDetails(String);

impl AuditDetails {
    /// `details` as JSON: a struct or map serialises to an object.
    pub fn of(details: &impl serde::Serialize) -> Self {
        // Fails only for a map with non-string keys or a failing `Serialize` impl — a bug
        // in the caller, which must not lose the event itself.
        Self(serde_json::to_string(details).unwrap_or_else(|e| {
            tracing::error!(error = %e, "audit details could not be serialised");
            serde_json::json!({ "details_error": e.to_string() }).to_string()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for AuditDetails {
    fn default() -> Self {
        Self("{}".to_owned())
    }
}

impl From<serde_json::Value> for AuditDetails {
    fn from(details: serde_json::Value) -> Self {
        Self(details.to_string())
    }
}

impl NewAuditEvent {
    /// A successful action by `actor` in `org` with no resource, details or request facts yet.
    pub fn new(org_id: Option<OrgId>, actor: Actor, action: impl Into<String>) -> Self {
        Self {
            org_id,
            actor,
            action: action.into(),
            resource_type: None,
            resource_id: None,
            outcome: Outcome::Success,
            ip: None,
            user_agent: None,
            request_id: None,
            details: AuditDetails::default(),
        }
    }

    pub fn resource(mut self, kind: &str, id: impl ToString) -> Self {
        self.resource_type = Some(kind.to_owned());
        self.resource_id = Some(id.to_string());
        self
    }
}

/// A recorded event as the API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub seq: i64,
    pub org_id: Option<OrgId>,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub hash: String,
}

impl From<event::Model> for AuditEvent {
    fn from(m: event::Model) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            org_id: m.org_id.map(OrgId),
            actor_type: m.actor_type,
            actor_id: m.actor_id,
            action: m.action,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            outcome: m.outcome,
            ip: m.ip,
            user_agent: m.user_agent,
            request_id: m.request_id,
            details: serde_json::from_str(&m.details).unwrap_or(serde_json::Value::Null),
            created_at: m.created_at,
            hash: m.hash,
        }
    }
}

fn chain_of(org: Option<OrgId>) -> String {
    org.map_or_else(|| PLATFORM_CHAIN.to_owned(), |o| o.to_string())
}

/// Canonical encoding hashed into the chain: a JSON array of the stored column values in a
/// fixed order, timestamps at microsecond precision. Changing this breaks every existing
/// chain, so it is versioned by its first element.
///
/// Written straight into `out` with serde_json's serializer: the same bytes as
/// `serde_json::to_vec(&json!([...]))` of those values (a test holds the two together), without
/// building a `Value` tree — copying every column, the details included, for each event
/// hashed was most of the bookkeeping thread's own work in the chat-completions benchmark.
fn canonical_into(m: &event::Model, out: &mut Vec<u8>) {
    use serde::ser::{SerializeSeq, Serializer};
    /// A `Display` value serialised as a JSON string without an intermediate `String`.
    struct AsStr<T>(T);
    impl<T: std::fmt::Display> serde::Serialize for AsStr<T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }
    let mut ser = serde_json::Serializer::new(out);
    let written = (|| {
        let mut a = ser.serialize_seq(Some(17))?;
        a.serialize_element("v1")?;
        a.serialize_element(&m.chain)?;
        a.serialize_element(&m.seq)?;
        a.serialize_element(&AsStr(m.id.hyphenated()))?;
        a.serialize_element(&m.org_id.map(|o| AsStr(o.hyphenated())))?;
        a.serialize_element(&m.actor_type)?;
        a.serialize_element(&m.actor_id)?;
        a.serialize_element(&m.action)?;
        a.serialize_element(&m.resource_type)?;
        a.serialize_element(&m.resource_id)?;
        a.serialize_element(&m.outcome)?;
        a.serialize_element(&m.ip)?;
        a.serialize_element(&m.user_agent)?;
        a.serialize_element(&m.request_id)?;
        a.serialize_element(&m.details)?;
        a.serialize_element(&AsStr(m.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")))?;
        a.serialize_element(&m.prev_hash)?;
        a.end()
    })();
    written.expect("a JSON array of strings and numbers always serialises into a Vec");
}

/// The chain hash of `m`, with `buf` as scratch space (reused across events).
fn hash_with(m: &event::Model, buf: &mut Vec<u8>) -> String {
    buf.clear();
    canonical_into(m, buf);
    hex::encode(Sha256::digest(buf.as_slice()))
}

fn hash_of(m: &event::Model) -> String {
    hash_with(m, &mut Vec::new())
}

/// Append one event. Call it with the transaction of the change it records, so both commit
/// or neither does.
pub async fn append(
    conn: &impl ConnectionTrait,
    new: NewAuditEvent,
) -> Result<AuditEvent, StoreError> {
    let chain = chain_of(new.org_id);
    let mut stored = append_to_chain(conn, &chain, vec![new], Keep::Rows).await?;
    stored
        .pop()
        .map(Into::into)
        .ok_or_else(|| StoreError::Corrupt("audit append stored nothing".into()))
}

/// Append many events (any organisations) in the caller's transaction, in order within
/// each chain: per chain a fixed handful of statements however many events it gets, where
/// [`append`] per event costs five. For writers that batch events off the request path.
pub async fn append_batch(
    conn: &impl ConnectionTrait,
    events: Vec<NewAuditEvent>,
) -> Result<usize, StoreError> {
    let mut chains: Vec<(String, Vec<NewAuditEvent>)> = Vec::new();
    for ev in events {
        let chain = chain_of(ev.org_id);
        match chains.iter_mut().find(|(c, _)| *c == chain) {
            Some((_, list)) => list.push(ev),
            None => chains.push((chain, vec![ev])),
        }
    }
    let mut n = 0;
    for (chain, list) in chains {
        n += list.len();
        append_to_chain(conn, &chain, list, Keep::Nothing).await?;
    }
    Ok(n)
}

/// Rows per multi-row INSERT (17 columns each: far below SQLite's and PostgreSQL's bounds on
/// bound parameters). Small enough that building one statement, and hashing one chunk of
/// events, never holds the async worker for long: a batch of hundreds of events is written
/// in several awaits, so requests sharing the worker run in between.
const INSERT_CHUNK: usize = 64;

async fn append_to_chain(
    conn: &impl ConnectionTrait,
    chain: &str,
    events: Vec<NewAuditEvent>,
    keep: Keep,
) -> Result<Vec<event::Model>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    head::Entity::insert(head::ActiveModel {
        chain: Set(chain.to_owned()),
        seq: Set(0),
        hash: Set(GENESIS_HASH.to_owned()),
    })
    .on_conflict(
        OnConflict::column(head::Column::Chain)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    // Taking the row lock (PostgreSQL) / write lock (SQLite) before reading the head, and
    // reserving one sequence number per event.
    head::Entity::update_many()
        .col_expr(
            head::Column::Seq,
            Expr::col(head::Column::Seq).add(events.len() as i64),
        )
        .filter(head::Column::Chain.eq(chain))
        .exec(conn)
        .await?;
    let current = head::Entity::find_by_id(chain.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("audit chain head {chain} vanished")))?;
    let first_seq = current.seq - events.len() as i64 + 1;
    let mut prev_hash = current.hash;
    let mut kept = Vec::new();
    // One chunk of rows at a time: hashed, inserted, and (for a batch) dropped, so a batch
    // of hundreds never holds them all at once or copies them for the statement.
    let mut events = events.into_iter();
    let mut seqs = first_seq..;
    let mut scratch = Vec::with_capacity(1024);
    loop {
        let mut chunk = Vec::with_capacity(INSERT_CHUNK);
        for (seq, new) in seqs.by_ref().zip(events.by_ref()).take(INSERT_CHUNK) {
            let (actor_type, actor_id) = new.actor.parts();
            let mut model = event::Model {
                id: uuid::Uuid::now_v7(),
                chain: chain.to_owned(),
                seq,
                org_id: new.org_id.map(|o| o.0),
                actor_type: actor_type.to_owned(),
                actor_id,
                action: new.action,
                resource_type: new.resource_type,
                resource_id: new.resource_id,
                outcome: new.outcome.as_str().to_owned(),
                ip: new.ip,
                user_agent: new.user_agent,
                request_id: new.request_id,
                details: new.details.0,
                created_at: super::now(),
                prev_hash: std::mem::take(&mut prev_hash),
                hash: String::new(),
            };
            model.hash = hash_with(&model, &mut scratch);
            prev_hash = model.hash.clone();
            chunk.push(model);
        }
        if chunk.is_empty() {
            break;
        }
        if keep == Keep::Rows {
            kept.extend(chunk.iter().cloned());
        }
        let backend = conn.get_database_backend();
        let sql = insert_sql(backend, chunk.len());
        let values = chunk
            .into_iter()
            .flat_map(insert_values)
            .collect::<Vec<_>>();
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        tokio::task::yield_now().await;
    }
    head::Entity::update_many()
        .col_expr(head::Column::Hash, Expr::value(prev_hash))
        .filter(head::Column::Chain.eq(chain))
        .exec(conn)
        .await?;
    Ok(kept)
}

/// Columns of `audit_events` in the order [`insert_values`] gives their values.
const INSERT_COLUMNS: [&str; 17] = [
    "id",
    "chain",
    "seq",
    "org_id",
    "actor_type",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "details",
    "created_at",
    "prev_hash",
    "hash",
];

/// `INSERT INTO audit_events (...) VALUES (...), ...` for `rows` events, in the backend's
/// placeholder style. Written out here rather than through `insert_many`, which converted
/// each row to an `ActiveModel` and rendered the statement from sea-query's tree, copying
/// every value twice; here the text is a plain loop and the values are moved in with the same
/// `Value` types the `ActiveModel` would give them, so they encode alike.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    use std::fmt::Write;
    let cols = INSERT_COLUMNS.len();
    let mut sql = String::with_capacity(64 + 16 * cols + rows * cols * 6);
    sql.push_str("INSERT INTO \"audit_events\" (");
    for (i, c) in INSERT_COLUMNS.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}\"{c}\"");
    }
    sql.push_str(") VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let sep = if c == 0 { "" } else { ", " };
            match backend {
                DbBackend::Postgres => {
                    let _ = write!(sql, "{sep}${}", r * cols + c + 1);
                }
                _ => {
                    let _ = write!(sql, "{sep}?");
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// One event's values in [`INSERT_COLUMNS`] order.
fn insert_values(m: event::Model) -> [sea_orm::Value; 17] {
    [
        m.id.into(),
        m.chain.into(),
        m.seq.into(),
        m.org_id.into(),
        m.actor_type.into(),
        m.actor_id.into(),
        m.action.into(),
        m.resource_type.into(),
        m.resource_id.into(),
        m.outcome.into(),
        m.ip.into(),
        m.user_agent.into(),
        m.request_id.into(),
        m.details.into(),
        m.created_at.into(),
        m.prev_hash.into(),
        m.hash.into(),
    ]
}

/// Whether [`append_to_chain`] returns the stored rows (a batch writer needs only the count).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Rows,
    Nothing,
}

/// Filters for listing an organisation's audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Only events older than this sequence number (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

/// Newest first, at most `limit` events.
pub async fn list(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    filter: &AuditFilter,
    limit: u64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut q = event::Entity::find().filter(event::Column::Chain.eq(chain_of(Some(ctx.org_id()))));
    if let Some(a) = &filter.action {
        q = q.filter(event::Column::Action.eq(a));
    }
    if let Some(a) = &filter.actor_id {
        q = q.filter(event::Column::ActorId.eq(a));
    }
    if let Some(o) = filter.outcome {
        q = q.filter(event::Column::Outcome.eq(o.as_str()));
    }
    if let Some(s) = filter.before_seq {
        q = q.filter(event::Column::Seq.lt(s));
    }
    Ok(q.order_by_desc(event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Result of checking one chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub events_checked: u64,
    /// The first event that does not link correctly, or `None` when the chain is intact.
    pub first_broken: Option<BrokenLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub event_id: Option<uuid::Uuid>,
    pub reason: String,
}

/// Walk a chain from its first event, in pages, recomputing every hash.
pub async fn verify_chain(
    conn: &impl ConnectionTrait,
    org: Option<OrgId>,
) -> Result<ChainReport, StoreError> {
    const PAGE: u64 = 1000;
    let chain = chain_of(org);
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_seq = 1i64;
    let mut checked = 0u64;
    let broken = |checked, seq, id, reason: String| ChainReport {
        chain: chain.clone(),
        events_checked: checked,
        first_broken: Some(BrokenLink {
            seq,
            event_id: id,
            reason,
        }),
    };
    loop {
        let page = event::Entity::find()
            .filter(event::Column::Chain.eq(&chain))
            .filter(event::Column::Seq.gte(expected_seq))
            .order_by_asc(event::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        let last_page = (page.len() as u64) < PAGE;
        for m in page {
            if m.seq != expected_seq {
                return Ok(broken(
                    checked,
                    expected_seq,
                    None,
                    format!("event {expected_seq} is missing (next found: {})", m.seq),
                ));
            }
            if m.prev_hash != expected_prev {
                return Ok(broken(
                    checked,
                    m.seq,
                    Some(m.id),
                    "prev_hash does not match the previous event's hash".into(),
                ));
            }
            if hash_of(&m) != m.hash {
                return Ok(broken(
                    checked,
                    m.seq,
                    Some(m.id),
                    "content does not match its hash (the row was modified)".into(),
                ));
            }
            expected_prev = m.hash;
            expected_seq += 1;
            checked += 1;
        }
        if last_page {
            break;
        }
    }
    let head = head::Entity::find_by_id(chain.clone()).one(conn).await?;
    if let Some(h) = head.filter(|h| h.seq != expected_seq - 1 || h.hash != expected_prev) {
        return Ok(broken(
            checked,
            expected_seq,
            None,
            format!(
                "the chain ends at event {} but its head records event {} (events were removed from the end)",
                expected_seq - 1,
                h.seq
            ),
        ));
    }
    Ok(ChainReport {
        chain,
        events_checked: checked,
        first_broken: None,
    })
}

/// Every organisation that has an audit chain (for `assay audit verify` without `--org`).
pub async fn chains(conn: &impl ConnectionTrait) -> Result<Vec<Option<OrgId>>, StoreError> {
    Ok(head::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|h| h.chain.parse().ok().map(OrgId))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding as first written (a `json!` array): what every chain stored so far was
    /// hashed over, so [`canonical_into`] must produce exactly its bytes.
    fn canonical_as_first_written(m: &event::Model) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([
            "v1",
            m.chain,
            m.seq,
            m.id.to_string(),
            m.org_id.map(|o| o.to_string()),
            m.actor_type,
            m.actor_id,
            m.action,
            m.resource_type,
            m.resource_id,
            m.outcome,
            m.ip,
            m.user_agent,
            m.request_id,
            m.details,
            m.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            m.prev_hash,
        ]))
        .unwrap()
    }

    fn model(full: bool) -> event::Model {
        let some = |s: &str| full.then(|| s.to_owned());
        event::Model {
            id: uuid::Uuid::now_v7(),
            chain: "platform".into(),
            seq: i64::MAX - 3,
            org_id: full.then(uuid::Uuid::new_v4),
            actor_type: "user".into(),
            actor_id: some("8d7a\u{e9}"),
            action: "ai.call".into(),
            resource_type: some("control"),
            resource_id: some("A.5.1"),
            outcome: "denied".into(),
            ip: some("2001:db8::1"),
            user_agent: some("agent \"quoted\" \\ back\tslash \u{1} \u{2028} \u{1F600}"),
            request_id: some("req-1"),
            details: r#"{"prompt":"line\nbreak","n":1.5,"nested":{"a":[null,true]}}"#.into(),
            created_at: super::super::now(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_insert_names_every_column_of_the_entity_in_model_order() {
        use sea_orm::{IdenStatic, Iterable};
        let entity: Vec<&str> = event::Column::iter().map(|c| c.as_str()).collect();
        assert_eq!(entity, INSERT_COLUMNS);
        let sql = insert_sql(DbBackend::Postgres, 2);
        assert!(sql.ends_with("$33, $34)"), "{sql}");
        assert_eq!(insert_sql(DbBackend::Sqlite, 3).matches('?').count(), 51);
    }

    #[test]
    fn the_canonical_encoding_keeps_the_bytes_existing_chains_were_hashed_over() {
        let mut buf = Vec::new();
        for full in [true, false] {
            let m = model(full);
            buf.clear();
            canonical_into(&m, &mut buf);
            assert_eq!(
                String::from_utf8(buf.clone()).unwrap(),
                String::from_utf8(canonical_as_first_written(&m)).unwrap()
            );
            assert_eq!(
                hash_of(&m),
                hex::encode(Sha256::digest(canonical_as_first_written(&m)))
            );
        }
    }
}
