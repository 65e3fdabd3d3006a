//! The simulated homes on the home channel: each home's fridge makes the home and its other
//! screens join with the fridge's code, as a person would type it; a person who changes their
//! mind does so on one screen (their own, else the fridge), and the shard measures how long
//! the change takes to be in force on the home's other screens that serve them; likewise how
//! long a screen's count of the offers it showed takes to reach the others.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ledtrad_agent::events::Subscription;
use ledtrad_agent::home::HomeCommand;
use ledtrad_agent::RunningAgent;
use ledtrad_protocol::{HomeId, PersonId, Purpose};

use super::device::Device;

/// How long a revocation may take to reach a screen of the home before the shard counts it as
/// late (and goes on: the audit then judges that screen's decisions against the revocation).
pub(super) const LATE: Duration = Duration::from_secs(5);

/// Joins `devices` (one home's, the fridge first) to one home: the fridge makes it, and each
/// other screen joins with its code. Returns the home's pseudonym.
pub(super) async fn join(devices: &[Device]) -> anyhow::Result<HomeId> {
    let (fridge, others) = devices.split_first().context("a home without devices")?;
    let made =
        fridge.handle.home(HomeCommand::Create).await.with_context(|| format!("{}: making a home", fridge.id))?;
    let home = made.home.clone().context("a new home has a pseudonym")?;
    let code = made.code.context("a new home shows its code")?;
    for device in others {
        let joined = device
            .handle
            .home(HomeCommand::Join(code.clone()))
            .await
            .with_context(|| format!("{}: joining the home of {}", device.id, fridge.id))?;
        if joined.home != made.home {
            bail!("{} joined home {:?}, not the fridge's {:?}", device.id, joined.home, made.home);
        }
    }
    Ok(home)
}

/// The screen a person makes a change on: their own (a lock screen or e-reader only they use),
/// else the first that serves them (the fridge).
pub(super) fn screen_of(serves: &[Vec<usize>], person: usize) -> Option<usize> {
    serves
        .iter()
        .position(|people| people.as_slice() == [person])
        .or_else(|| serves.iter().position(|people| people.contains(&person)))
}

/// Watches the events of a home's screens from before a change until each shows it.
pub(super) struct Watch {
    watching: Vec<(usize, Subscription)>,
    from: Instant,
}

impl Watch {
    /// Starts watching `agents` (by slot).
    pub(super) fn start(agents: &[(usize, &RunningAgent)]) -> anyhow::Result<Self> {
        let mut watching = Vec::with_capacity(agents.len());
        for (slot, agent) in agents {
            let subscription = agent.events().subscribe(None).map_err(|e| anyhow::anyhow!("{e}"))?;
            watching.push((*slot, subscription));
        }
        Ok(Self { watching, from: Instant::now() })
    }

    /// From now: the change was made and is in force on the screen it was made on.
    pub(super) fn made(&mut self) {
        self.from = Instant::now();
    }

    /// Waits until each watched screen's consent view shows `person` without `purpose`;
    /// returns the time each took (from [`Watch::made`]), `None` where it took over [`LATE`].
    pub(super) async fn revoked(self, person: &PersonId, purpose: Purpose) -> Vec<(usize, Option<Duration>)> {
        let revoked = |view: &serde_json::Value| {
            view["people"][person.as_str()][purpose.as_str()] == serde_json::Value::Bool(false)
        };
        self.until("consent", revoked).await
    }

    /// Waits until each watched screen's home view counts at least `shown` offers today (it
    /// heard another screen's count); returns the time each took, as [`Watch::revoked`].
    pub(super) async fn shown(self, shown: u32) -> Vec<(usize, Option<Duration>)> {
        self.until("home", |view| view["shown_today"].as_u64().is_some_and(|n| n >= u64::from(shown))).await
    }

    /// Waits on each watched screen for a `name` event whose data satisfies `holds`.
    async fn until(self, name: &str, holds: impl Fn(&serde_json::Value) -> bool) -> Vec<(usize, Option<Duration>)> {
        let from = self.from;
        let mut lags = Vec::with_capacity(self.watching.len());
        for (slot, mut subscription) in self.watching {
            let deadline = from + LATE;
            let heard = tokio::time::timeout_at(deadline.into(), event_where(&mut subscription, name, &holds)).await;
            lags.push((slot, heard.ok().map(|()| Instant::now().saturating_duration_since(from))));
        }
        lags
    }
}

/// Waits for a `name` event whose data satisfies `holds`.
async fn event_where(subscription: &mut Subscription, name: &str, holds: &impl Fn(&serde_json::Value) -> bool) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match subscription.live.recv().await {
            Ok(event) => event,
            // Fell behind: the next event of the kind still says what is in force.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return std::future::pending().await,
        };
        if event.name != name {
            continue;
        }
        if serde_json::from_str::<serde_json::Value>(&event.data).is_ok_and(|view| holds(&view)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_changes_their_mind_on_their_own_screen_else_the_fridge() {
        // The fridge serves all three; a lock screen is anna's (0), an e-reader bo's (1).
        let serves = vec![vec![0, 1, 2], vec![0], vec![1]];
        assert_eq!(screen_of(&serves, 0), Some(1));
        assert_eq!(screen_of(&serves, 1), Some(2));
        assert_eq!(screen_of(&serves, 2), Some(0));
        assert_eq!(screen_of(&serves, 3), None);
    }
}
