//! A person's data export: everything the device holds about them.

use ledtrad_protocol::{PersonId, UnixTime};

use super::{storage, AgentCore};
use crate::clock::Now;
use crate::handle::{
    AgentError, ErasureRecord, FeatureValue, FeedbackRecord, ImpressionTotal, LearningTotal, MyData, QueuedMessage,
    QueuedReport,
};
use crate::household::Sharing;
use crate::store::Household;

/// What the device's own data holds about a person (empty when it is not about them).
type DeviceData = (Vec<FeatureValue>, Vec<crate::store::ImpressionRow>, Vec<FeedbackRecord>, Vec<QueuedReport>);

/// What pruning kept of impressions and learning answers, as counts.
type Totals = (Vec<ImpressionTotal>, Vec<LearningTotal>);

impl AgentCore {
    /// Whether the device's own data is about `person`.
    pub(super) fn device_data_about(&self, person: &PersonId, household: &Household) -> bool {
        match self.config.sharing {
            Sharing::Personal => *person == self.config.owner,
            Sharing::Shared => household.contains_key(person),
        }
    }

    /// Everything the device holds about `person` (`None`: the owner).
    pub fn my_data(&self, person: Option<PersonId>, now: Now) -> Result<MyData, AgentError> {
        let person = person.unwrap_or_else(|| self.config.owner.clone());
        let household = self.store.household().map_err(storage)?;
        if !household.contains_key(&person) {
            return Err(AgentError::UnknownPerson(person));
        }
        let about = self.device_data_about(&person, &household);
        let consent_ledger = self.store.ledger().map_err(storage)?.into_iter().filter(|r| r.person == person).collect();
        let erasures = self
            .store
            .erasures(&person)
            .map_err(storage)?
            .into_iter()
            .map(|(at, source)| ErasureRecord { at, source })
            .collect();
        let queued_messages = if about { self.queued_messages()? } else { Vec::new() };
        let (features, impressions, feedback, queued_reports) =
            if about { self.device_data(now)? } else { (Vec::new(), Vec::new(), Vec::new(), Vec::new()) };
        let (impression_totals, learning_totals) = if about { self.totals()? } else { (Vec::new(), Vec::new()) };
        Ok(MyData {
            person,
            device: self.config.device.clone(),
            sharing: self.config.sharing,
            device_data_about_person: about,
            consent_ledger,
            erasures,
            features,
            impressions,
            feedback,
            impression_totals,
            learning_totals,
            queued_reports,
            queued_messages,
        })
    }

    fn totals(&self) -> Result<Totals, AgentError> {
        let impressions = self.store.impression_totals().map_err(storage)?;
        let learning = self.store.learning_totals().map_err(storage)?;
        Ok((
            impressions
                .into_iter()
                .map(|(offer, campaign, count)| ImpressionTotal { offer, campaign, count })
                .collect(),
            learning
                .into_iter()
                .map(|(offer, accepts, rejections)| LearningTotal { offer, accepts, rejections })
                .collect(),
        ))
    }

    /// Messages waiting in the outbox. Rows the broker acknowledged wait out
    /// `egress::LINGER` in the outbox, sent: they are not shown.
    fn queued_messages(&self) -> Result<Vec<QueuedMessage>, AgentError> {
        Ok(self
            .store
            .outbox()
            .map_err(storage)?
            .into_iter()
            .filter(|row| !self.egress.is_delivered(row.id))
            .map(|row| QueuedMessage {
                purpose: row.purpose,
                topic: row.topic,
                queued_at: row.created_at,
                payload: serde_json::from_slice(&row.payload).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    fn device_data(&self, now: Now) -> Result<DeviceData, AgentError> {
        let features = self
            .engine
            .features(now.wall)
            .into_iter()
            .map(|(feature, value)| FeatureValue { feature, value })
            .collect();
        let impressions = self.store.impressions_since(UnixTime(0)).map_err(storage)?;
        let feedback = self
            .store
            .feedback_rows()
            .map_err(storage)?
            .into_iter()
            .map(|(decision, offer, kind, at)| FeedbackRecord { decision, offer, kind, at })
            .collect();
        let reports = self
            .tally
            .pending()
            .into_iter()
            .map(|p| QueuedReport {
                day: p.day,
                campaign: p.campaign,
                arm: p.arm,
                catalogue_version: p.catalogue_version,
                impressions: p.impressions,
                accepts: p.accepts,
                dismissals: p.dismissals,
                conversions: p.conversions,
            })
            .collect();
        Ok((features, impressions, feedback, reports))
    }
}
