//! A virtual home: its people (adults and children, each with their own consent, likings and
//! irritation), a fridge whose shelves empty as the household eats and fill on shopping days,
//! e-readers with reading sessions by genre and finished books, and lock screens woken through
//! the day.
//!
//! Every random draw comes from the home's own generator, seeded from the run's seed and the
//! home's number, so the same seed gives the same homes whatever the order of work.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::ShownOffer;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceKind, Moment, Purpose};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::people::{Person, Responses};
use crate::survey::Survey;

/// How consent is drawn for the people of the simulated homes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Every adult grants every purpose; children `measure` (the only purpose a child's
    /// grant counts for, and the agent refuses the others).
    All,
    /// Nobody grants anything: only contextual offers may be shown.
    None,
    /// Each person decides per purpose (personalise 60%, measure 50%, request 30%, improve 20%).
    #[default]
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

/// How homes are made up (scenario parameters).
///
/// The sizes are roughly Statistics Sweden's households by number of people (about two in five
/// Swedish households are one person); the device shares are assumptions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Households {
    /// Shares of homes with 1, 2, 3, 4 and 5 people.
    pub sizes: [f64; 5],
    /// In a home of two, the chance the second person is a child (a single parent's home).
    /// In homes of three or more, everyone past the first two people is a child.
    pub single_parent: f64,
    /// Share of people aged 13 or more with a lock screen that runs ledtrad.
    pub lock_screen: f64,
    /// Share of people aged 16 or more who read on an e-reader that runs ledtrad.
    pub ereader: f64,
}

impl Default for Households {
    fn default() -> Self {
        Self { sizes: [0.40, 0.31, 0.12, 0.12, 0.05], single_parent: 0.1, lock_screen: 0.8, ereader: 0.25 }
    }
}

impl Households {
    /// Checks the shares.
    pub fn check(&self) -> Result<(), String> {
        let total: f64 = self.sizes.iter().sum();
        if self.sizes.iter().any(|s| !(0.0..=1.0).contains(s)) || (total - 1.0).abs() > 0.01 {
            return Err(format!(
                "households.sizes {:?} must be five shares (1 to 5 people) adding up to 1",
                self.sizes
            ));
        }
        for (name, value) in
            [("single_parent", self.single_parent), ("lock_screen", self.lock_screen), ("ereader", self.ereader)]
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("households.{name} is {value}; a share must be from 0 to 1"));
            }
        }
        Ok(())
    }

    /// The expected devices per home: a fridge, and lock screens and e-readers by the shares
    /// (for sizing runs: 3,500 homes make about 9,700 devices with the defaults).
    pub fn devices_per_home(&self) -> f64 {
        let people: f64 = self.sizes.iter().enumerate().map(|(i, s)| s * (i + 1) as f64).sum();
        // Everyone past the first two is a child, and the second of two with a chance;
        // children's ages are uniform over 0–17.
        let children: f64 = self.sizes.iter().enumerate().map(|(i, s)| s * i.saturating_sub(1) as f64).sum::<f64>()
            + self.sizes[1] * self.single_parent;
        let adults = people - children;
        let old_enough = |from: f64| adults + children * (18.0 - from) / 18.0;
        1.0 + self.lock_screen * old_enough(13.0) + self.ereader * old_enough(16.0)
    }
}

/// Who lives in the simulated homes and how they behave: the run's population.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Population {
    /// How consent is drawn.
    pub consent: ConsentMode,
    /// The survey figures consent is drawn from in [`ConsentMode::Survey`].
    pub survey: Survey,
    /// How homes are made up.
    pub households: Households,
    /// How people answer offers.
    pub responses: Responses,
}

/// One device of a home.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeDevice {
    /// Its kind.
    pub kind: DeviceKind,
    /// Its name in the home: `fridge`, or the kind and its owner (`lock-screen-p2`).
    pub name: String,
    /// The people it serves, by index into [`Home::people`]: its owner first.
    pub people: Vec<usize>,
    /// An e-reader's reading by genre (crime, cooking, travel), adding up to 1.
    genres: [f64; 3],
}

/// What one device does in one simulated step.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    /// The device, by index into [`Home::devices`].
    pub device: usize,
    /// Its kind.
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
    /// The people, adults first.
    pub people: Vec<Person>,
    /// The devices: the fridge first.
    pub devices: Vec<HomeDevice>,
    rng: ChaCha8Rng,
    levels: [f64; SHELF.len()],
    shopping_phase: u64,
}

fn feature(name: &str) -> FeatureName {
    // Every name used here is in the protocol's feature list; a typo fails the simulator's tests.
    FeatureName::try_new(name).unwrap_or_else(|e| panic!("simulator feature list: {e}"))
}

/// An adult's age, attitude and consent.
fn draw_adult(rng: &mut ChaCha8Rng, population: &Population) -> (u32, bool, ConsentState) {
    let attitude = population.survey.draw_attitude(rng);
    // The survey's ages start at 16; a home's first two people are adults.
    let age = attitude.age.max(18);
    let consent = match population.consent {
        ConsentMode::All => ConsentState::all(),
        ConsentMode::None => ConsentState::NONE,
        ConsentMode::Survey => attitude.consent,
        ConsentMode::Mixed => {
            [(Purpose::Personalise, 0.6), (Purpose::Measure, 0.5), (Purpose::Request, 0.3), (Purpose::Improve, 0.2)]
                .into_iter()
                .fold(ConsentState::NONE, |s, (p, share)| s.with(p, rng.random_bool(share)))
        }
    };
    (age, attitude.minimal, consent)
}

impl Home {
    /// Home number `index` of a run seeded with `seed`.
    pub fn new(seed: u64, index: usize, population: &Population) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let h = &population.households;
        // Shares are checked to add up to 1 within 0.01; drawn against their total.
        let draw: f64 = rng.random_range(0.0..1.0) * h.sizes.iter().sum::<f64>();
        let mut size = h.sizes.len();
        let mut cumulative = 0.0;
        for (i, share) in h.sizes.iter().enumerate() {
            cumulative += share;
            if draw < cumulative {
                size = i + 1;
                break;
            }
        }
        let mut people: Vec<Person> = Vec::with_capacity(size);
        for i in 0..size {
            let id = format!("p{}", i + 1);
            let child = i >= 2 || (i == 1 && size == 2 && rng.random_bool(h.single_parent));
            let person = if child {
                // Parents decide for their children; only `measure` counts for a child.
                let parent = people[0].consent;
                let measure = match population.consent {
                    ConsentMode::All => true,
                    _ => parent.allows(Purpose::Measure),
                };
                let consent = ConsentState::NONE.with(Purpose::Measure, measure);
                let age = rng.random_range(0..18);
                Person::new(id, age, people[0].minimal, consent, &mut rng)
            } else {
                let (age, minimal, consent) = draw_adult(&mut rng, population);
                Person::new(id, age, minimal, consent, &mut rng)
            };
            people.push(person);
        }
        let mut devices = vec![HomeDevice {
            kind: DeviceKind::Fridge,
            name: "fridge".into(),
            people: (0..size).collect(),
            genres: [0.0; 3],
        }];
        for (i, person) in people.iter().enumerate() {
            if person.age >= 13 && rng.random_bool(h.lock_screen) {
                let name = format!("lock-screen-{}", person.id);
                devices.push(HomeDevice { kind: DeviceKind::LockScreen, name, people: vec![i], genres: [0.0; 3] });
            }
            if person.age >= 16 && rng.random_bool(h.ereader) {
                let mut genres: [f64; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0f64).powi(2));
                let total: f64 = genres.iter().sum::<f64>().max(1e-9);
                genres.iter_mut().for_each(|g| *g /= total);
                let name = format!("ereader-{}", person.id);
                devices.push(HomeDevice { kind: DeviceKind::Ereader, name, people: vec![i], genres });
            }
        }
        let levels = std::array::from_fn(|_| rng.random_range(0.2..1.0));
        let shopping_phase = rng.random_range(0..4);
        Self { index, people, devices, rng, levels, shopping_phase }
    }

    /// The consent device `device` works under (computed here independently of the agent, for
    /// the audit): a personal device its owner's, the shared fridge the strictest among
    /// everyone, per purpose, where a child's grants count for `measure` only.
    pub fn consent(&self, device: usize) -> ConsentState {
        let Some(d) = self.devices.get(device) else { return ConsentState::NONE };
        d.people.iter().filter_map(|i| self.people.get(*i)).fold(ConsentState::all(), |s, p| s.and(p.counted()))
    }

    /// The fridge's shelf levels now, in [`SHELF`] order.
    pub fn shelf_levels(&self) -> [f64; SHELF.len()] {
        self.levels
    }

    /// What happens in the home in the 10 minutes starting at local `hour`:`minute` of `day`.
    pub fn step(&mut self, day: u64, hour: u64, minute: u64) -> Vec<DeviceEvent> {
        let mut events = Vec::new();
        // Shopping every fourth day at 17:00 refills the shelves.
        if (day + self.shopping_phase) % 4 == 0 && hour == 17 && minute == 0 {
            self.levels.iter_mut().for_each(|l| *l = self.rng.random_range(0.8..1.0));
        }
        for device in 0..self.devices.len() {
            match self.devices[device].kind {
                DeviceKind::Fridge => self.fridge(device, hour, &mut events),
                DeviceKind::Ereader => self.reader(device, hour, &mut events),
                DeviceKind::LockScreen => self.lock_screen(device, hour, &mut events),
            }
        }
        events
    }

    fn fridge(&mut self, device: usize, hour: u64, events: &mut Vec<DeviceEvent>) {
        let people = self.people.len() as f64;
        let meal = matches!(hour, 7 | 12 | 18);
        let p_open = if meal {
            (0.3 + 0.1 * people).min(0.9)
        } else if (7..23).contains(&hour) {
            0.08
        } else {
            0.0
        };
        if !self.rng.random_bool(p_open) {
            return;
        }
        let before = self.levels;
        // A bigger household eats more at a time.
        let appetite = 0.6 + 0.2 * people;
        for l in &mut self.levels {
            let eaten = if meal { self.rng.random_range(0.0..0.12) } else { self.rng.random_range(0.0..0.03) };
            *l = (*l - eaten * appetite).max(0.0);
        }
        let mut signals: Vec<Signal> =
            SHELF.iter().zip(self.levels).map(|(name, value)| Signal { feature: feature(name), value }).collect();
        signals.push(Signal { feature: feature("fridge.door.opens"), value: 1.0 });
        let crossed = before.iter().zip(self.levels).any(|(b, a)| *b >= 0.2 && a < 0.2);
        let moment = if crossed { Moment::InventoryLow } else { Moment::DoorOpened };
        events.push(DeviceEvent { device, kind: DeviceKind::Fridge, signals, moment: Some(moment) });
    }

    fn reader(&mut self, device: usize, hour: u64, events: &mut Vec<DeviceEvent>) {
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
        let genres = self.devices[device].genres;
        let mut signals = vec![Signal { feature: feature("ereader.reading.minutes"), value: 10.0 }];
        for (name, share) in ["ereader.genre.crime", "ereader.genre.cooking", "ereader.genre.travel"].iter().zip(genres)
        {
            signals.push(Signal { feature: feature(name), value: share });
        }
        let finished = self.rng.random_bool(0.2);
        if finished {
            signals.push(Signal { feature: feature("ereader.books.finished"), value: 1.0 });
        }
        let moment = if finished { Moment::BookFinished } else { Moment::ReaderSleep };
        events.push(DeviceEvent { device, kind: DeviceKind::Ereader, signals, moment: Some(moment) });
    }

    fn lock_screen(&mut self, device: usize, hour: u64, events: &mut Vec<DeviceEvent>) {
        let owner_is_child = self.devices[device].people.first().is_some_and(|i| self.people[*i].child);
        let awake = if owner_is_child { 7..21 } else { 7..23 };
        let p_wake = if awake.contains(&hour) { 0.25 } else { 0.01 };
        if !self.rng.random_bool(p_wake) {
            return;
        }
        let dark = !(8..16).contains(&hour);
        let light = if dark { self.rng.random_range(0.0..0.2) } else { self.rng.random_range(0.3..1.0) };
        let signals = vec![
            Signal { feature: feature("lockscreen.unlocks"), value: 1.0 },
            Signal { feature: feature("context.ambient_light"), value: light },
        ];
        events.push(DeviceEvent { device, kind: DeviceKind::LockScreen, signals, moment: Some(Moment::ScreenWoken) });
    }

    /// Draws today's revocations: (step of the day, person, purpose), at most one per person,
    /// more likely the more irritated they are.
    pub fn plan_revocations(&mut self, steps_per_day: u64, responses: &Responses) -> Vec<(u64, usize, Purpose)> {
        let mut plan = Vec::new();
        for (i, person) in self.people.iter().enumerate() {
            if let Some(purpose) = responses.revocation(person, &mut self.rng) {
                plan.push((self.rng.random_range(0..steps_per_day), i, purpose));
            }
        }
        plan
    }

    /// Person `i` revokes `purpose`.
    pub fn revoke(&mut self, i: usize, purpose: Purpose) {
        if let Some(person) = self.people.get_mut(i) {
            person.consent = person.consent.with(purpose, false);
        }
    }

    /// A night passes: irritation fades.
    pub fn overnight(&mut self, responses: &Responses) {
        self.people.iter_mut().for_each(|p| responses.overnight(p));
    }

    /// Who is at `device` when it shows something: its owner, or on the fridge one of the
    /// people aged 16 or more.
    fn viewer(&mut self, device: usize) -> usize {
        let served = &self.devices[device].people;
        let grown: Vec<usize> = served.iter().copied().filter(|i| self.people[*i].age >= 16).collect();
        let pool = if grown.is_empty() { served.clone() } else { grown };
        if pool.len() <= 1 {
            pool.first().copied().unwrap_or(0)
        } else {
            pool[self.rng.random_range(0..pool.len())]
        }
    }

    /// Whether an accepted offer is then taken up (bought, subscribed).
    pub fn converts(&mut self, responses: &Responses) -> bool {
        self.rng.random_bool(responses.convert_after_accept)
    }

    /// Whether the household does what an offer of `category` on `device` is about on its own,
    /// shown it or not (buys the butter anyway): the base rate a holdout arm measures, so a
    /// campaign's uplift is what its offers add to it.
    pub fn converts_unprompted(&mut self, device: usize, category: &str) -> bool {
        let viewer = self.viewer(device);
        let liking = self.people[viewer].liking(category);
        self.rng.random_bool((0.02 + 0.06 * liking).clamp(0.0, 1.0))
    }

    /// Whether someone answers a consent prompt with "no" (otherwise it is left unanswered).
    pub fn declines_prompt(&mut self, responses: &Responses) -> bool {
        self.rng.random_bool(responses.decline_prompt)
    }

    /// Someone at `device` sees `offer` of `category`: their answer, if any.
    pub fn respond(
        &mut self,
        device: usize,
        offer: &ShownOffer,
        category: &str,
        responses: &Responses,
    ) -> Option<FeedbackKind> {
        let viewer = self.viewer(device);
        responses.answer(&mut self.people[viewer], offer, category, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(consent: ConsentMode) -> Population {
        Population { consent, ..Population::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_home() {
        let run = |seed| {
            let mut home = Home::new(seed, 3, &population(ConsentMode::Mixed));
            (0..144).flat_map(|s| home.step(0, s / 6, (s % 6) * 10)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn homes_are_made_up_as_the_figures_say() {
        let homes: Vec<Home> = (0..4_000).map(|i| Home::new(5, i, &population(ConsentMode::Survey))).collect();
        let share = |n: usize| homes.iter().filter(|h| h.people.len() == n).count() as f64 / homes.len() as f64;
        let sizes = Households::default().sizes;
        for n in 1..=5 {
            assert!((share(n) - sizes[n - 1]).abs() < 0.03, "{n} people: {}", share(n));
        }
        let with_children = homes.iter().filter(|h| h.people.iter().any(|p| p.child)).count();
        assert!(with_children > 4_000 / 5, "{with_children}");
        assert!(homes
            .iter()
            .all(|h| h.devices[0].kind == DeviceKind::Fridge && h.people.len() == h.devices[0].people.len()));
        // Personal devices belong to someone old enough.
        for home in &homes {
            for d in &home.devices[1..] {
                let owner = &home.people[d.people[0]];
                assert!(owner.age >= 13, "{} owned by a {}-year-old", d.name, owner.age);
            }
        }
        let devices: usize = homes.iter().map(|h| h.devices.len()).sum();
        let per_home = devices as f64 / homes.len() as f64;
        assert!((per_home - Households::default().devices_per_home()).abs() < 0.05, "{per_home}");
        assert!((2.7..3.0).contains(&per_home), "3,500 homes make about 9,700 devices: {per_home}");
    }

    #[test]
    fn the_shared_fridge_takes_the_strictest_consent_and_a_child_never_grants_personalise() {
        for index in 0..200 {
            let home = Home::new(1, index, &population(ConsentMode::All));
            let fridge = home.consent(0);
            let has_child = home.people.iter().any(|p| p.child);
            assert_eq!(fridge.allows(Purpose::Personalise), !has_child, "home {index}");
            assert!(fridge.allows(Purpose::Measure));
        }
        for index in 0..50 {
            let home = Home::new(1, index, &population(ConsentMode::Mixed));
            for p in Purpose::ALL {
                let all = home.people.iter().all(|person| person.counted().allows(p));
                assert_eq!(home.consent(0).allows(p), all);
            }
        }
        assert_eq!(Home::new(1, 0, &population(ConsentMode::None)).consent(0), ConsentState::NONE);
    }

    #[test]
    fn bad_household_figures_are_named() {
        let bad = Households { sizes: [0.5, 0.5, 0.5, 0.0, 0.0], ..Households::default() };
        assert!(bad.check().unwrap_err().contains("adding up to 1"));
        let bad = Households { ereader: 1.5, ..Households::default() };
        assert_eq!(bad.check().unwrap_err(), "households.ereader is 1.5; a share must be from 0 to 1");
    }
}
