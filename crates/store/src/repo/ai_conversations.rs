//! Assistant conversations and their messages. A conversation belongs to an organisation
//! and to the principal who started it (`user:<uuid>` or `api_key:<id>`); every query
//! filters by both, so neither another organisation nor another member can read it.
//! Assistant messages are stored as the client saw them (after output safety).

use crate::entities::{ai_conversation as conv, ai_message as msg};
use crate::error::StoreError;
use assay_core::OrgCtx;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conversation {
    pub id: Uuid,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<conv::Model> for Conversation {
    fn from(m: conv::Model) -> Self {
        Self {
            id: m.id,
            title: m.title,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Message {
    pub id: Uuid,
    pub seq: i32,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub offline: bool,
    pub safety_action: Option<String>,
    pub safety_rules: Vec<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl From<msg::Model> for Message {
    fn from(m: msg::Model) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            role: m.role,
            content: m.content,
            model: m.model,
            provider: m.provider,
            offline: m.offline,
            safety_action: m.safety_action,
            safety_rules: m
                .safety_rules
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            cost_usd: m.cost_usd,
            created_at: m.created_at,
        }
    }
}

/// A message to append.
#[derive(Clone, Debug, Default)]
pub struct NewMessage {
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub offline: bool,
    pub safety_action: Option<String>,
    pub safety_rules: Vec<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
}

pub async fn create(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    owner: &str,
    title: &str,
) -> Result<Conversation, StoreError> {
    let now = super::now();
    let model = conv::Model {
        id: Uuid::now_v7(),
        org_id: ctx.org_id().0,
        owner: owner.to_owned(),
        title: title.to_owned(),
        created_at: now,
        updated_at: now,
    };
    conv::Entity::insert(conv::ActiveModel {
        id: Set(model.id),
        org_id: Set(model.org_id),
        owner: Set(model.owner.clone()),
        title: Set(model.title.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(model.into())
}

/// The owner's conversations, most recently active first.
pub async fn list(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    owner: &str,
    limit: u64,
) -> Result<Vec<Conversation>, StoreError> {
    Ok(conv::Entity::find()
        .filter(conv::Column::OrgId.eq(ctx.org_id().0))
        .filter(conv::Column::Owner.eq(owner))
        .order_by_desc(conv::Column::UpdatedAt)
        .order_by_desc(conv::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(Conversation::from)
        .collect())
}

pub async fn get(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    owner: &str,
    id: Uuid,
) -> Result<Option<Conversation>, StoreError> {
    Ok(conv::Entity::find_by_id(id)
        .filter(conv::Column::OrgId.eq(ctx.org_id().0))
        .filter(conv::Column::Owner.eq(owner))
        .one(conn)
        .await?
        .map(Conversation::from))
}

/// Delete a conversation with its messages; false when the owner has no such conversation.
pub async fn delete(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    owner: &str,
    id: Uuid,
) -> Result<bool, StoreError> {
    if get(conn, ctx, owner, id).await?.is_none() {
        return Ok(false);
    }
    msg::Entity::delete_many()
        .filter(msg::Column::OrgId.eq(ctx.org_id().0))
        .filter(msg::Column::ConversationId.eq(id))
        .exec(conn)
        .await?;
    let res = conv::Entity::delete_many()
        .filter(conv::Column::OrgId.eq(ctx.org_id().0))
        .filter(conv::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// A conversation's messages in order (the caller has checked the conversation is theirs).
pub async fn messages(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    conversation: Uuid,
) -> Result<Vec<Message>, StoreError> {
    Ok(msg::Entity::find()
        .filter(msg::Column::OrgId.eq(ctx.org_id().0))
        .filter(msg::Column::ConversationId.eq(conversation))
        .order_by_asc(msg::Column::Seq)
        .all(conn)
        .await?
        .into_iter()
        .map(Message::from)
        .collect())
}

/// Append a message (next sequence number) and mark the conversation active. Run it in a
/// `Db::write` transaction: the unique (conversation, seq) index turns a concurrent append
/// into a conflict instead of a reordering.
pub async fn append(
    conn: &impl ConnectionTrait,
    ctx: &OrgCtx,
    conversation: Uuid,
    new: NewMessage,
) -> Result<Message, StoreError> {
    let last = msg::Entity::find()
        .filter(msg::Column::OrgId.eq(ctx.org_id().0))
        .filter(msg::Column::ConversationId.eq(conversation))
        .order_by_desc(msg::Column::Seq)
        .one(conn)
        .await?
        .map_or(0, |m| m.seq);
    let now = super::now();
    let rules = (!new.safety_rules.is_empty())
        .then(|| serde_json::to_string(&new.safety_rules).unwrap_or_default());
    let model = msg::Model {
        id: Uuid::now_v7(),
        org_id: ctx.org_id().0,
        conversation_id: conversation,
        seq: last + 1,
        role: new.role,
        content: new.content,
        model: new.model,
        provider: new.provider,
        offline: new.offline,
        safety_action: new.safety_action,
        safety_rules: rules,
        input_tokens: new.input_tokens,
        output_tokens: new.output_tokens,
        cost_usd: new.cost_usd,
        created_at: now,
    };
    msg::Entity::insert(msg::ActiveModel {
        id: Set(model.id),
        org_id: Set(model.org_id),
        conversation_id: Set(model.conversation_id),
        seq: Set(model.seq),
        role: Set(model.role.clone()),
        content: Set(model.content.clone()),
        model: Set(model.model.clone()),
        provider: Set(model.provider.clone()),
        offline: Set(model.offline),
        safety_action: Set(model.safety_action.clone()),
        safety_rules: Set(model.safety_rules.clone()),
        input_tokens: Set(model.input_tokens),
        output_tokens: Set(model.output_tokens),
        cost_usd: Set(model.cost_usd),
        created_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    conv::Entity::update_many()
        .col_expr(conv::Column::UpdatedAt, Expr::value(now))
        .filter(conv::Column::OrgId.eq(ctx.org_id().0))
        .filter(conv::Column::Id.eq(conversation))
        .exec(conn)
        .await?;
    Ok(model.into())
}
