//! `assay frameworks import|list`: the operator's way to add framework packs to the
//! configured database, through the same import code as the HTTP API
//! (`assay_api::catalogues`): the same checks, the same canonical storage, the same audit
//! record (actor `system`, in the organisation's chain or the platform chain).

use crate::cli::{EXIT_CONFIG, EXIT_FAILURE, FrameworksAction, open_db};
use assay_api::cache_sync::Announcer;
use assay_api::catalogues::{Catalogues, PackError, PackScope, Upload};
use assay_config::Config;
use assay_core::catalogue::{Format, builtin};
use assay_core::{OrgCtx, OrgId};
use assay_store::Db;
use assay_store::repo::audit::{Actor, NewAuditEvent};
use assay_store::repo::{imported_frameworks, organisations};
use std::path::Path;
use std::process::ExitCode;

pub async fn run(config: &Config, action: FrameworksAction) -> ExitCode {
    let org = match &action {
        FrameworksAction::Import { org, .. } | FrameworksAction::List { org } => org.clone(),
    };
    let org = match org.map(|raw| parse_org(&raw)).transpose() {
        Ok(org) => org,
        Err(code) => return code,
    };
    let db = match open_db(config).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let code = match prepare(&db, org).await {
        Err(code) => code,
        Ok(ctx) => match action {
            FrameworksAction::Import {
                file, format, key, ..
            } => {
                let catalogues = Catalogues::new(db.clone(), announcer(config));
                import(&catalogues, ctx, &file, format.as_deref(), key).await
            }
            FrameworksAction::List { .. } => list(&db, ctx.as_ref()).await,
        },
    };
    db.close().await;
    code
}

fn parse_org(raw: &str) -> Result<OrgId, ExitCode> {
    raw.parse().map_err(|_| {
        eprintln!("error: --org: '{raw}' is not an organisation id (a UUID)");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The schema must be current (the command writes to it) and the organisation must exist.
async fn prepare(db: &Db, org: Option<OrgId>) -> Result<Option<OrgCtx>, ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_FAILURE)
    };
    db.ensure_migrated().await.map_err(|e| fail(&e))?;
    let Some(org) = org else {
        return Ok(None);
    };
    let ctx = OrgCtx::for_system(org);
    match organisations::get(db.primary(), &ctx).await {
        Ok(_) => Ok(Some(ctx)),
        Err(assay_store::StoreError::NotFound { .. }) => {
            eprintln!("error: --org: no organisation with id {org}");
            Err(ExitCode::from(EXIT_FAILURE))
        }
        Err(e) => Err(fail(&e)),
    }
}

/// With Redis configured, the running nodes are told about an import, so they drop their
/// catalogue views at once rather than when the views expire.
fn announcer(config: &Config) -> Announcer {
    match Announcer::for_config(config) {
        Ok(announcer) => announcer,
        Err(e) => {
            eprintln!("warning: running nodes will see the import when their views expire: {e}");
            Announcer::default()
        }
    }
}

async fn import(
    catalogues: &Catalogues,
    ctx: Option<OrgCtx>,
    file: &Path,
    format: Option<&str>,
    key: Option<String>,
) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let filename = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let upload = Upload {
        bytes,
        // clap only lets the three names through.
        format: format.and_then(Format::parse),
        filename: Some(filename),
        key,
    };
    let scope = match &ctx {
        Some(ctx) => PackScope::Org(*ctx),
        None => PackScope::Platform,
    };
    let event = NewAuditEvent::new(scope.org_id(), Actor::System, "framework.imported");
    match catalogues
        .import(scope, upload, Some("cli".to_owned()), event)
        .await
    {
        Ok((record, pack)) => {
            let whom = match record.org_id {
                Some(org) => format!("for organisation {org}"),
                None => "platform-wide".to_owned(),
            };
            println!(
                "imported {} ({} {}) {whom}: {} requirements ({} assessable) from a {} file",
                record.key,
                record.name,
                record.version,
                record.requirement_count,
                pack.framework.assessable().count(),
                record.source_format,
            );
            if !pack.checks.is_empty() {
                println!("kept Prowler checks for {} requirements", pack.checks.len());
            }
            ExitCode::SUCCESS
        }
        Err(PackError::Invalid(err)) => {
            let n = err.problems.len();
            eprintln!(
                "error: {} is not a valid framework ({n} problem{}); nothing was imported:",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            for p in &err.problems {
                let at = if p.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", p.path)
                };
                eprintln!("  - {at}{}", p.kind);
            }
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn list(db: &Db, ctx: Option<&OrgCtx>) -> ExitCode {
    let imported = match ctx {
        Some(ctx) => imported_frameworks::list_visible(db.primary(), ctx).await,
        None => imported_frameworks::list_platform(db.primary()).await,
    };
    let imported = match imported {
        Ok(list) => list,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    println!(
        "{:<40} {:<9} {:<8} {:>12}  name",
        "key", "scope", "format", "requirements"
    );
    for f in builtin().frameworks() {
        println!(
            "{:<40} {:<9} {:<8} {:>12}  {} {}",
            f.key,
            "built-in",
            "yaml",
            f.requirements.len(),
            f.name,
            f.version
        );
    }
    for r in imported {
        println!(
            "{:<40} {:<9} {:<8} {:>12}  {} {}",
            r.key,
            if r.org_id.is_some() {
                "org"
            } else {
                "platform"
            },
            r.source_format,
            r.requirement_count,
            r.name,
            r.version
        );
    }
    ExitCode::SUCCESS
}
