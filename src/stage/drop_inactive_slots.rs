//! `drop-inactive-slots`: drops the replication slots no standby is using (the manual's step
//! before restoring a cluster's primary). Destructive.

use serde::{Deserialize, Serialize};

use super::{run_sql, Action, Kind, Resolved, StageContext, Sub};
use crate::error::Result;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: Option<String>,
}

impl super::Spec for Spec {
    fn resolve(&self, _: &mut Sub<'_>) -> Resolved {
        Resolved::new(
            &self.name,
            Action::DropInactiveSlots(DropInactiveSlots {}),
            true,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropInactiveSlots {}

impl Kind for DropInactiveSlots {
    const KIND: &'static str = "drop-inactive-slots";

    fn sql(&self) -> Option<(Option<String>, String)> {
        Some((
            None,
            "SELECT slot_name, pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE NOT active;"
                .to_string(),
        ))
    }

    async fn run(&self, ctx: &mut StageContext<'_>) -> Result<String> {
        let rows = run_sql(self, ctx).await?;
        let names: Vec<String> = rows.iter().filter_map(|r| r.first().cloned()).collect();
        Ok(if names.is_empty() {
            "no inactive slots".into()
        } else {
            format!("dropped {} slot(s): {}", names.len(), names.join(", "))
        })
    }
}
