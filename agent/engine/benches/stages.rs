//! Criterion benches of the engine's stages, for development: feature windows, the scoring
//! model on a batch, catalogue verification, and whole decisions on small and large
//! catalogues. `cargo bench -p ledtrad-engine`; the figures to quote come from
//! `ledtrad-sim bench decide --json`.

// Bench helpers unwrap: a panic is a failed bench with its message.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ledtrad_engine::features::FeatureStore;
use ledtrad_engine::model::{RuntimeKind, ScoringModel};
use ledtrad_engine::{Draw, LocalTime};
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::feature::{signal_features, FeatureName};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceKind, Moment, Purpose};

const MODEL: &[u8] = include_bytes!("../../../examples/models/propensity.tflite");

fn personalise() -> ConsentState {
    ConsentState::NONE.with(Purpose::Personalise, true)
}

/// A store fed a week of signals on every source feature.
fn build_store() -> FeatureStore {
    let mut store = FeatureStore::new(LocalTime::fixed(3600));
    let features: Vec<FeatureName> = signal_features().collect();
    for k in 0..7 * 96u64 {
        let feature = features[(k as usize) % features.len()];
        let value = (k % 10) as f64 / 10.0;
        store.handle_signal(Signal { feature, value }, personalise(), common::START.plus_secs(k * 900));
    }
    store
}

fn windows(c: &mut Criterion) {
    let now = common::START.plus_secs(7 * 86_400);
    let store = build_store();
    let features: Vec<FeatureName> = FeatureName::all().collect();
    c.bench_function("features/value of all 32", |b| {
        b.iter(|| features.iter().filter_map(|f| store.value(*f, black_box(now))).sum::<f64>())
    });
    let butter = FeatureName::try_new("fridge.butter.level").unwrap();
    c.bench_function("features/handle one signal", |b| {
        b.iter_batched(
            build_store,
            |mut s| s.handle_signal(Signal { feature: butter, value: 0.2 }, personalise(), now),
            BatchSize::SmallInput,
        )
    });
}

fn model(c: &mut Criterion) {
    let model = ScoringModel::load(RuntimeKind::Tract, MODEL).unwrap();
    for batch in [1usize, 64, 256] {
        let rows = vec![0.5f32; batch * 20];
        c.bench_function(&format!("model/tract batch of {batch}"), |b| b.iter(|| model.score(black_box(&rows), batch)));
    }
}

fn decisions(c: &mut Criterion) {
    let catalogue = common::example_catalogue();
    c.bench_function("trust/verify and compile the example catalogue", |b| {
        b.iter(|| common::build_engine(DeviceKind::Fridge, 3600, 0.1, black_box(catalogue.clone())))
    });
    let mut engine = common::build_engine(DeviceKind::Fridge, 3600, 0.1, catalogue);
    engine.set_consent(personalise());
    let butter = FeatureName::try_new("fridge.butter.level").unwrap();
    engine.handle_signal(Signal { feature: butter, value: 0.05 }, common::START);
    let mut k = 0u64;
    c.bench_function("decide/example catalogue, door opened", |b| {
        b.iter(|| {
            k += 1;
            let draw = Draw { camouflage: 0.5, pick: k, explore: Some(k) };
            engine.decide(Moment::DoorOpened, common::START.plus_secs(k * 600), draw).shown.is_some()
        })
    });
}

criterion_group!(benches, windows, model, decisions);
criterion_main!(benches);
