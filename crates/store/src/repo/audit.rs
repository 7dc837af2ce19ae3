//! The append-only, hash-chained audit log.
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
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
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
    fn parts(&self) -> (&'static str, Option<String>) {
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
    pub details: serde_json::Value,
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
            details: serde_json::Value::Object(Default::default()),
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
fn canonical(m: &event::Model) -> Vec<u8> {
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
    .expect("a JSON array of strings and numbers always serialises")
}

fn hash_of(m: &event::Model) -> String {
    hex::encode(Sha256::digest(canonical(m)))
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
                details: new.details.to_string(),
                created_at: super::now(),
                prev_hash: std::mem::take(&mut prev_hash),
                hash: String::new(),
            };
            model.hash = hash_of(&model);
            prev_hash = model.hash.clone();
            chunk.push(model);
        }
        if chunk.is_empty() {
            break;
        }
        let rows: Vec<event::ActiveModel> = match keep {
            Keep::Rows => {
                kept.extend(chunk.iter().cloned());
                chunk.into_iter().map(Into::into).collect()
            }
            Keep::Nothing => chunk.into_iter().map(Into::into).collect(),
        };
        event::Entity::insert_many(rows)
            .exec_without_returning(conn)
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
