//! A virtual home: a fridge whose shelves empty as the household eats and fill on shopping
//! days, an e-reader with evening reading, a lock screen woken through the day, two people
//! with their own consent, and latent preferences that decide how they answer offers.
//!
//! Every random draw comes from the home's own generator, seeded from the run's seed and the
//! home's number, so the same seed gives the same homes whatever the order of work.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::ShownOffer;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::taxonomy::CATEGORIES;
use ledtrad_protocol::{DeviceKind, Moment, Purpose};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How consent is drawn for the people of the simulated homes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Everyone grants every purpose.
    All,
    /// Nobody grants anything: only contextual offers may be shown.
    None,
    /// Each person decides per purpose (personalise 60%, measure 50%, request 30%, improve 20%).
    Mixed,
    /// Each person's age and consent drawn from published survey figures ([`crate::survey`]).
    Survey,
}

/// The shelf items a fridge weighs, with the feature each feeds.
pub const SHELF: [&str; 5] = [
    "fridge.butter.level",
    "fridge.milk.level",
    "fridge.cheese.level",
    "fridge.vegetables.level",
    "fridge.drinks.level",
];

/// How the simulated devices' sensor signals reach their agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorPath {
    /// Straight into the agent's input, as a device's own software would hand them over.
    #[default]
    Direct,
    /// Through the firmware: virtual sensors, the firmware's drivers, sampler and node, and
    /// its frames over a socket to the agent's sensor link (fridges and lock screens; the
    /// e-reader has no sensor board).
    Firmware,
}

/// What one device does in one simulated step.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    /// The device.
    pub kind: DeviceKind,
    /// Signals to feed before the moment.
    pub signals: Vec<Signal>,
    /// The moment that asks for a decision, if any.
    pub moment: Option<Moment>,
}

/// One virtual home.
pub struct Home {
    /// The home's number.
    pub index: usize,
    rng: ChaCha8Rng,
    levels: [f64; SHELF.len()],
    genres: [f64; 3],
    unlocks_today: u32,
    shopping_phase: u64,
    preferences: Vec<(&'static str, f64)>,
    people: [ConsentState; 2],
}

fn feature(name: &str) -> FeatureName {
    // Every name used here is in the protocol's feature list; a typo fails the simulator's tests.
    FeatureName::try_new(name).unwrap_or_else(|e| panic!("simulator feature list: {e}"))
}

fn draw_person(rng: &mut ChaCha8Rng, mode: ConsentMode, survey: &crate::survey::Survey) -> ConsentState {
    match mode {
        ConsentMode::All => ConsentState::all(),
        ConsentMode::None => ConsentState::NONE,
        ConsentMode::Survey => survey.draw(rng).1,
        ConsentMode::Mixed => {
            [(Purpose::Personalise, 0.6), (Purpose::Measure, 0.5), (Purpose::Request, 0.3), (Purpose::Improve, 0.2)]
                .into_iter()
                .fold(ConsentState::NONE, |s, (p, share)| s.with(p, rng.random_bool(share)))
        }
    }
}

impl Home {
    /// Home number `index` of a run seeded with `seed`.
    pub fn new(seed: u64, index: usize, mode: ConsentMode) -> Self {
        Self::with_survey(seed, index, mode, &crate::survey::Survey::default())
    }

    /// Like [`Home::new`], drawing consent from `survey` in [`ConsentMode::Survey`].
    pub fn with_survey(seed: u64, index: usize, mode: ConsentMode, survey: &crate::survey::Survey) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let levels = std::array::from_fn(|_| rng.random_range(0.2..1.0));
        let mut genres: [f64; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0f64).powi(2));
        let total: f64 = genres.iter().sum::<f64>().max(1e-9);
        genres.iter_mut().for_each(|g| *g /= total);
        let preferences = CATEGORIES.iter().map(|c| (c.path, rng.random_range(0.0..1.0))).collect();
        let people = [draw_person(&mut rng, mode, survey), draw_person(&mut rng, mode, survey)];
        let shopping_phase = rng.random_range(0..4);
        Self { index, rng, levels, genres, unlocks_today: 0, shopping_phase, preferences, people }
    }

    /// The two people of every home, as the devices know them: A owns the lock screen, B the
    /// e-reader, and both share the fridge.
    pub const PEOPLE: [&'static str; 2] = ["a", "b"];

    /// What person `i` (0 = A, 1 = B) granted.
    pub fn person_consent(&self, i: usize) -> ConsentState {
        self.people[i]
    }

    /// The people a device of `kind` serves, by index: its owner first.
    pub fn people_of(kind: DeviceKind) -> &'static [usize] {
        match kind {
            DeviceKind::LockScreen => &[0],
            DeviceKind::Ereader => &[1],
            DeviceKind::Fridge => &[0, 1],
        }
    }

    /// The consent each device works under (computed here independently of the agent, for the
    /// audit): the lock screen is person A's, the e-reader
    /// person B's, and the shared fridge takes the strictest of both, per purpose.
    pub fn consent(&self, kind: DeviceKind) -> ConsentState {
        match kind {
            DeviceKind::LockScreen => self.people[0],
            DeviceKind::Ereader => self.people[1],
            DeviceKind::Fridge => Purpose::ALL
                .into_iter()
                .fold(ConsentState::NONE, |s, p| s.with(p, self.people[0].allows(p) && self.people[1].allows(p))),
        }
    }

    /// The fridge's shelf levels now, in [`SHELF`] order.
    pub fn shelf_levels(&self) -> [f64; SHELF.len()] {
        self.levels
    }

    /// What happens in the home in the 10 minutes starting at local `hour`:`minute` of `day`.
    pub fn step(&mut self, day: u64, hour: u64, minute: u64) -> Vec<DeviceEvent> {
        let mut events = Vec::new();
        if hour == 0 && minute == 0 {
            self.unlocks_today = 0;
        }
        // Shopping every fourth day at 17:00 refills the shelves.
        if (day + self.shopping_phase) % 4 == 0 && hour == 17 && minute == 0 {
            self.levels.iter_mut().for_each(|l| *l = self.rng.random_range(0.8..1.0));
        }
        self.fridge(hour, &mut events);
        self.reader(hour, &mut events);
        self.lock_screen(hour, &mut events);
        events
    }

    fn fridge(&mut self, hour: u64, events: &mut Vec<DeviceEvent>) {
        let meal = matches!(hour, 7 | 12 | 18);
        let p_open = if meal {
            0.5
        } else if (7..23).contains(&hour) {
            0.08
        } else {
            0.0
        };
        if !self.rng.random_bool(p_open) {
            return;
        }
        let before = self.levels;
        for l in &mut self.levels {
            let eaten = if meal { self.rng.random_range(0.0..0.12) } else { self.rng.random_range(0.0..0.03) };
            *l = (*l - eaten).max(0.0);
        }
        let mut signals: Vec<Signal> =
            SHELF.iter().zip(self.levels).map(|(name, value)| Signal { feature: feature(name), value }).collect();
        signals.push(Signal { feature: feature("fridge.door.opens"), value: 1.0 });
        let crossed = before.iter().zip(self.levels).any(|(b, a)| *b >= 0.2 && a < 0.2);
        let moment = if crossed { Moment::InventoryLow } else { Moment::DoorOpened };
        events.push(DeviceEvent { kind: DeviceKind::Fridge, signals, moment: Some(moment) });
    }

    fn reader(&mut self, hour: u64, events: &mut Vec<DeviceEvent>) {
        let p_read = if (20..23).contains(&hour) {
            0.12
        } else if (7..9).contains(&hour) {
            0.03
        } else {
            0.0
        };
        if !self.rng.random_bool(p_read) {
            return;
        }
        let mut signals = vec![Signal { feature: feature("ereader.reading.minutes"), value: 10.0 }];
        for (name, share) in
            ["ereader.genre.crime", "ereader.genre.cooking", "ereader.genre.travel"].iter().zip(self.genres)
        {
            signals.push(Signal { feature: feature(name), value: share });
        }
        let finished = self.rng.random_bool(0.2);
        if finished {
            signals.push(Signal { feature: feature("ereader.books.finished"), value: 1.0 });
        }
        let moment = if finished { Moment::BookFinished } else { Moment::ReaderSleep };
        events.push(DeviceEvent { kind: DeviceKind::Ereader, signals, moment: Some(moment) });
    }

    fn lock_screen(&mut self, hour: u64, events: &mut Vec<DeviceEvent>) {
        let p_wake = if (7..23).contains(&hour) { 0.25 } else { 0.01 };
        if !self.rng.random_bool(p_wake) {
            return;
        }
        self.unlocks_today += 1;
        let dark = !(8..16).contains(&hour);
        let light = if dark { self.rng.random_range(0.0..0.2) } else { self.rng.random_range(0.3..1.0) };
        let signals = vec![
            Signal { feature: feature("lockscreen.unlocks"), value: 1.0 },
            Signal { feature: feature("context.ambient_light"), value: light },
        ];
        events.push(DeviceEvent { kind: DeviceKind::LockScreen, signals, moment: Some(Moment::ScreenWoken) });
    }

    /// The share of people who revoke one of their grants on a given day (a simple stand-in for
    /// changing one's mind; the irritation model of a later version will drive it).
    pub const DAILY_REVOCATION_SHARE: f64 = 0.03;

    /// Draws today's revocations: (step of the day, person, purpose), at most one per person.
    pub fn plan_revocations(&mut self, steps_per_day: u64) -> Vec<(u64, usize, Purpose)> {
        let mut plan = Vec::new();
        for (i, person) in self.people.iter().enumerate() {
            let granted: Vec<Purpose> = Purpose::ALL.into_iter().filter(|p| person.allows(*p)).collect();
            if granted.is_empty() || !self.rng.random_bool(Self::DAILY_REVOCATION_SHARE) {
                continue;
            }
            let purpose = granted[self.rng.random_range(0..granted.len())];
            plan.push((self.rng.random_range(0..steps_per_day), i, purpose));
        }
        plan
    }

    /// Person `i` revokes `purpose`.
    pub fn revoke(&mut self, i: usize, purpose: Purpose) {
        self.people[i] = self.people[i].with(purpose, false);
    }

    /// Whether an accepted offer is then taken up (bought, subscribed).
    pub fn converts(&mut self) -> bool {
        self.rng.random_bool(0.3)
    }

    /// Whether the household does what an offer of `category` is about on its own, shown it or
    /// not (buys the butter anyway): the base rate a holdout arm measures, so a campaign's
    /// uplift is what its offers add to it.
    pub fn converts_unprompted(&mut self, category: &str) -> bool {
        let preference = self.preferences.iter().find(|(c, _)| *c == category).map_or(0.3, |(_, p)| *p);
        self.rng.random_bool((0.02 + 0.06 * preference).clamp(0.0, 1.0))
    }

    /// Whether someone answers a consent prompt with "no" (otherwise it is left unanswered).
    pub fn declines_prompt(&mut self) -> bool {
        self.rng.random_bool(0.6)
    }

    /// How the household answers a shown offer: `None` when nobody answers.
    pub fn respond(&mut self, offer: &ShownOffer, category: &str) -> Option<FeedbackKind> {
        if self.rng.random_bool(0.2) {
            return None;
        }
        let preference = self.preferences.iter().find(|(c, _)| *c == category).map_or(0.3, |(_, p)| *p);
        let p_accept = 0.05 + 0.45 * preference + if offer.personalised { 0.1 } else { 0.0 };
        if self.rng.random_bool(p_accept.clamp(0.0, 1.0)) {
            Some(FeedbackKind::Accepted)
        } else if self.rng.random_bool(0.1) {
            Some(FeedbackKind::NotForMe)
        } else {
            Some(FeedbackKind::Dismissed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_home() {
        let run = |seed| {
            let mut home = Home::new(seed, 3, ConsentMode::Mixed);
            (0..144).flat_map(|s| home.step(0, s / 6, (s % 6) * 10)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn the_shared_fridge_takes_the_strictest_consent() {
        for index in 0..50 {
            let home = Home::new(1, index, ConsentMode::Mixed);
            for p in Purpose::ALL {
                let fridge = home.consent(DeviceKind::Fridge).allows(p);
                assert_eq!(
                    fridge,
                    home.consent(DeviceKind::LockScreen).allows(p) && home.consent(DeviceKind::Ereader).allows(p)
                );
            }
        }
        assert_eq!(Home::new(1, 0, ConsentMode::None).consent(DeviceKind::Fridge), ConsentState::NONE);
        assert_eq!(Home::new(1, 0, ConsentMode::All).consent(DeviceKind::LockScreen), ConsentState::all());
    }
}
