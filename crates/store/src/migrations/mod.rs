//! Versioned schema migrations, written once with SeaORM's schema builder so the same
//! migration produces correct DDL for SQLite and PostgreSQL.
//!
//! Rules for a new migration (rolling upgrades, R-64): only add tables, nullable columns or
//! columns with defaults, and indexes; never rename or drop in the same release that stops
//! using something. Append new migrations to `Migrator::migrations` — never reorder.

mod m0001_identity_and_audit;
mod m0002_sessions_invitations_api_keys;
mod m0003_ai_usage;
mod m0004_compliance_posture;
mod m0005_imported_frameworks;
mod m0006_assessments_and_snapshots;
mod m0007_ai_conversations;
mod m0008_evidence_classifications;
mod m0009_ai_spend_months;
mod m0010_ai_safety_reviews;
mod m0011_ai_restore_pii;
mod m0012_evidence_classification_reviews;

use crate::db::Db;
use crate::error::StoreError;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use std::collections::HashSet;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_identity_and_audit::Migration),
            Box::new(m0002_sessions_invitations_api_keys::Migration),
            Box::new(m0003_ai_usage::Migration),
            Box::new(m0004_compliance_posture::Migration),
            Box::new(m0005_imported_frameworks::Migration),
            Box::new(m0006_assessments_and_snapshots::Migration),
            Box::new(m0007_ai_conversations::Migration),
            Box::new(m0008_evidence_classifications::Migration),
            Box::new(m0009_ai_spend_months::Migration),
            Box::new(m0010_ai_safety_reviews::Migration),
            Box::new(m0011_ai_restore_pii::Migration),
            Box::new(m0012_evidence_classification_reviews::Migration),
        ]
    }
}

/// One migration and whether the database has it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MigrationState {
    pub name: String,
    pub applied: bool,
}

/// Names of the migrations compiled into this binary, in order.
pub fn known_migrations() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

impl Db {
    /// Applied versions recorded in the database (creating the bookkeeping table if needed).
    async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_migration_models(self.primary())
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect())
    }

    /// Refuse a database migrated by a newer binary: it may hold data this code would corrupt.
    pub async fn ensure_schema_known(&self) -> Result<(), StoreError> {
        let known: HashSet<String> = known_migrations().into_iter().collect();
        let unknown: Vec<String> = self
            .applied_migrations()
            .await?
            .into_iter()
            .filter(|v| !known.contains(v))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(StoreError::UnknownMigrations(unknown))
        }
    }

    /// Every known migration and whether it is applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        self.ensure_schema_known().await?;
        let applied: HashSet<String> = self.applied_migrations().await?.into_iter().collect();
        Ok(known_migrations()
            .into_iter()
            .map(|name| MigrationState {
                applied: applied.contains(&name),
                name,
            })
            .collect())
    }

    /// Fail unless every known migration is applied (for `serve --no-migrate`).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        let pending: Vec<String> = self
            .migration_status()
            .await?
            .into_iter()
            .filter(|m| !m.applied)
            .map(|m| m.name)
            .collect();
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::PendingMigrations(pending))
        }
    }

    /// Apply pending migrations; returns the names applied now. On PostgreSQL an advisory
    /// lock makes several nodes starting at once take turns instead of racing.
    pub async fn migrate_up(&self) -> Result<Vec<String>, StoreError> {
        self.ensure_schema_known().await?;
        let _guard = crate::backend_specific::MigrationLock::acquire(self).await?;
        let before: HashSet<String> = self.applied_migrations().await?.into_iter().collect();
        Migrator::up(self.primary(), None).await?;
        let applied = known_migrations()
            .into_iter()
            .filter(|m| !before.contains(m))
            .collect::<Vec<_>>();
        for name in &applied {
            tracing::info!(migration = %name, "migration applied");
        }
        Ok(applied)
    }
}
