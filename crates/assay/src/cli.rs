//! Command-line interface: subcommands and what each does.

use assay_api::{App, MigrationPolicy, StartupError};
use assay_config::{Config, Sources};
use assay_store::Db;
use assay_store::repo::audit;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) const EXIT_FAILURE: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "assay",
    version,
    about = "Compliance automation: frameworks, evidence, AI, audit-grade records."
)]
pub struct Cli {
    /// Configuration file (default: $ASSAY_CONFIG, else ./assay.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve {
        /// Listen address, HOST:PORT (overrides server.addr).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Do not apply pending migrations; refuse to start if any are pending.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Framework packs: import OSCAL, Prowler or Assay YAML files; list what is available.
    Frameworks {
        #[command(subcommand)]
        action: FrameworksAction,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum MigrateAction {
    /// Apply pending migrations (the default).
    Up,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted) and every problem; exit 2 if any.
    Check,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the audit hash chains; report the first broken link. Exit 1 if any.
    Verify {
        /// Only this organisation's chain.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum FrameworksAction {
    /// Import a framework from a file. Without --org it is platform-wide (every
    /// organisation sees it); with --org only that organisation does. Exit 1 if the file has
    /// problems (each is printed with its path in the file) or the key is taken.
    Import {
        /// The file: an OSCAL catalog or profile (JSON), a Prowler compliance file (JSON) or
        /// an Assay YAML pack.
        file: PathBuf,
        /// oscal, prowler or yaml (default: detected from the content).
        #[arg(long, value_parser = ["oscal", "prowler", "yaml"])]
        format: Option<String>,
        /// Import for this organisation only.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
        /// Framework key to use instead of the one the file carries or implies.
        #[arg(long)]
        key: Option<String>,
    },
    /// List frameworks: built-in and platform-wide, plus the organisation's own with --org.
    List {
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(Sources {
        file: cli.config.as_deref(),
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the configuration cannot be read:\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => config_check(&config),
        Command::Serve { addr, no_migrate } => serve(config, addr, no_migrate).await,
        Command::Migrate { action } => migrate(&config, action.unwrap_or(MigrateAction::Up)).await,
        Command::Audit {
            action: AuditAction::Verify { org },
        } => audit_verify(&config, org).await,
        Command::Frameworks { action } => crate::frameworks::run(&config, action).await,
    }
}

fn config_check(config: &Config) -> ExitCode {
    println!(
        "# effective configuration (secrets redacted)\n{}",
        config.to_redacted_toml()
    );
    let problems = config.problems();
    if problems.is_empty() {
        println!("# configuration is valid");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s):", problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        ExitCode::from(EXIT_CONFIG)
    }
}

/// Print problems and return the config exit code.
fn config_problems(problems: &[assay_config::Problem]) -> ExitCode {
    eprintln!("error: invalid configuration:");
    for p in problems {
        eprintln!("  - {p}");
    }
    ExitCode::from(EXIT_CONFIG)
}

pub(crate) async fn open_db(config: &Config) -> Result<Db, ExitCode> {
    let settings = config.db_settings().map_err(|p| config_problems(&p))?;
    Db::connect(&settings).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_FAILURE)
    })
}

async fn serve(mut config: Config, addr: Option<String>, no_migrate: bool) -> ExitCode {
    if let Some(addr) = addr {
        config.server.addr = addr;
    }
    crate::telemetry::init(&config.log);
    let problems = config.problems();
    if !problems.is_empty() {
        return config_problems(&problems);
    }
    let listener = match std::net::TcpListener::bind(&config.server.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.server.addr);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if let Some(addr) = config.server.metrics_addr.clone()
        && let Err(e) = crate::metrics::serve(&addr).await
    {
        eprintln!("error: server.metrics_addr: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let policy = if no_migrate {
        MigrationPolicy::RequireCurrent
    } else {
        MigrationPolicy::Apply
    };
    let app = match App::start(config, listener, policy).await {
        Ok(app) => app,
        Err(StartupError::Config(p)) => return config_problems(&p),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn migrate(config: &Config, action: MigrateAction) -> ExitCode {
    crate::telemetry::init(&config.log);
    let db = match open_db(config).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let result = match action {
        MigrateAction::Up => db.migrate_up().await.map(|applied| {
            if applied.is_empty() {
                println!("database is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
        }),
        MigrateAction::Status => db.migration_status().await.map(|states| {
            for m in states {
                println!(
                    "{:<10} {}",
                    if m.applied { "applied" } else { "pending" },
                    m.name
                );
            }
        }),
    };
    db.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn audit_verify(config: &Config, org: Option<String>) -> ExitCode {
    let db = match open_db(config).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    if let Err(e) = db.ensure_schema_known().await {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let chains = match org {
        Some(raw) => match raw.parse() {
            Ok(id) => vec![Some(id)],
            Err(_) => {
                eprintln!("error: --org: '{raw}' is not an organisation id (a UUID)");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => match audit::chains(db.primary()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        },
    };
    let mut broken = false;
    for chain in chains {
        match audit::verify_chain(db.primary(), chain).await {
            Ok(report) => match &report.first_broken {
                None => println!(
                    "chain {}: intact ({} events)",
                    report.chain, report.events_checked
                ),
                Some(b) => {
                    broken = true;
                    println!(
                        "chain {}: BROKEN at event {}{}: {}",
                        report.chain,
                        b.seq,
                        b.event_id
                            .map(|id| format!(" (id {id})"))
                            .unwrap_or_default(),
                        b.reason
                    );
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    db.close().await;
    if broken {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}
