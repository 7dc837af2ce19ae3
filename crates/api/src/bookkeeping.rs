//! The bookkeeping thread and the database handle it writes with: AI audit batches and the
//! AI usage ledger are written there, off the request path and below it in priority (see
//! `assay_infra::background` for why and how).

use assay_infra::background::{Background, BackgroundPriority};
use assay_store::{Db, DbSettings};

#[derive(Clone)]
pub struct Bookkeeping {
    pub runtime: Background,
    /// A handle on the primary database opened on `runtime` (only its tasks use it).
    pub db: Db,
}

impl Bookkeeping {
    pub async fn start(
        primary: &Db,
        settings: &DbSettings,
        priority: BackgroundPriority,
    ) -> Result<Self, crate::StartupError> {
        let runtime = Background::start("assay-bookkeeping", priority)
            .map_err(crate::StartupError::Background)?;
        let (primary, settings) = (primary.clone(), settings.clone());
        let db = runtime
            .run(async move { primary.connect_for_background(&settings).await })
            .await
            .map_err(crate::StartupError::Background)??;
        Ok(Self { runtime, db })
    }
}
