//! `ledtrad-op report` without `--campaign`: the campaigns a report store holds, each with its
//! reports, days and fleets, so an operator finds what there is to read.

use std::fmt;

use ledtrad_protocol::FleetId;
use serde::Serialize;

use crate::collect::{ReportsAt, StoredCampaign};
use crate::report::{open_existing, ReportError};
use crate::uplift::date;

/// The campaigns in a report store.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignList {
    /// The store: its file, or its PostgreSQL address without the password.
    pub db: String,
    /// The fleet asked for, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetId>,
    /// The campaigns with reports, by name.
    pub campaigns: Vec<CampaignEntry>,
}

/// One campaign in the list.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignEntry {
    /// The campaign.
    pub campaign: String,
    /// Its reports (device-days).
    pub reports: u64,
    /// The days with reports.
    pub days: u32,
    /// The first day with a report, as a date (UTC).
    pub first_day: String,
    /// The last.
    pub last_day: String,
    /// The fleets that sent them.
    pub fleets: Vec<String>,
}

impl From<StoredCampaign> for CampaignEntry {
    fn from(c: StoredCampaign) -> Self {
        Self {
            campaign: c.campaign.to_string(),
            reports: c.reports,
            days: c.days,
            first_day: date(c.first_day),
            last_day: date(c.last_day),
            fleets: c.fleets.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The campaigns in the report store at `db` (of `fleet` only, when given), which must exist.
pub fn list_campaigns(db: &ReportsAt, fleet: Option<&FleetId>) -> Result<CampaignList, ReportError> {
    let store = open_existing(db)?;
    let campaigns = store.overview(fleet)?.into_iter().map(CampaignEntry::from).collect();
    Ok(CampaignList { db: store.name().into(), fleet: fleet.cloned(), campaigns })
}

impl fmt::Display for CampaignList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let of_fleet = self.fleet.as_ref().map(|fl| format!(" from fleet '{fl}'")).unwrap_or_default();
        if self.campaigns.is_empty() {
            return writeln!(
                f,
                "report database '{}' holds no reports{of_fleet} yet: devices send them while a collector runs (`ledtrad-op serve --reports FILE`)",
                self.db
            );
        }
        let n = self.campaigns.len();
        writeln!(f, "report database '{}': {n} campaign{}{of_fleet}", self.db, if n == 1 { "" } else { "s" })?;
        let width = self.campaigns.iter().map(|c| c.campaign.len()).max().unwrap_or(0).max("campaign".len());
        writeln!(
            f,
            "{:<width$}  {:>8}  {:>5}  {:<10}  {:<10}  fleets",
            "campaign", "reports", "days", "first", "last"
        )?;
        for c in &self.campaigns {
            writeln!(
                f,
                "{:<width$}  {:>8}  {:>5}  {:<10}  {:<10}  {}",
                c.campaign,
                c.reports,
                c.days,
                c.first_day,
                c.last_day,
                c.fleets.join(", ")
            )?;
        }
        writeln!(f, "read one with --campaign NAME")
    }
}
