//! The bench's decisions, pinned: the same workload as `ledtrad-sim bench decide` (a generated
//! catalogue, signals, Thompson sampling, answers feeding the posteriors, camouflage and
//! holdouts) must keep giving the same decisions, every candidate's verdict and score
//! included, whatever is done to make deciding faster. Each line is a decision's id, the offer
//! it showed and a hash of its whole trace; `write_golden_files` writes them again, to change
//! the pinned decisions on purpose.
//!
//! The built-in scorer and the dense runtime compute in plain loops, the same on every machine;
//! tract picks its kernels by the CPU, so its last bits may differ between machines and it is
//! not pinned here.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ledtrad_agent::engine::RuntimeKind;
use ledtrad_sim::bench::Workload;

const OFFERS: usize = 400;
const DECISIONS: usize = 1_500;

fn golden(scorer: Option<RuntimeKind>) -> PathBuf {
    let name = scorer.map_or("builtin", RuntimeKind::as_str);
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/decide-{name}.txt"))
}

/// FNV-1a over `bytes`.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// One line per decision: its id, the offer shown (or `-`), and a hash of its whole trace as
/// JSON; and the traces themselves, to show a difference.
fn replay(scorer: Option<RuntimeKind>) -> Vec<(String, String)> {
    let mut workload = Workload::new(OFFERS, 7, scorer).unwrap();
    (0..DECISIONS)
        .map(|_| {
            let (id, _, _) = workload.decide();
            let decision = workload.engine().decision(id).expect("a recent decision is traced");
            let json = serde_json::to_string(&decision).unwrap();
            let shown = decision.shown.as_ref().map_or("-", |s| s.offer.as_str());
            (format!("{} {shown} {:016x}", id.0, fnv(json.as_bytes())), json)
        })
        .collect()
}

fn check(scorer: Option<RuntimeKind>) {
    let path = golden(scorer);
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let got = replay(scorer);
    for ((line, json), want) in got.iter().zip(want.lines()) {
        assert_eq!(line, want, "{} differs at this decision:\n{json}", path.display());
    }
    assert_eq!(got.len(), want.lines().count(), "{}", path.display());
    let shown = got.iter().filter(|(line, _)| !line.contains(" - ")).count();
    assert!(shown > DECISIONS / 10, "the workload shows offers ({shown})");
}

#[test]
fn the_bench_decisions_are_the_pinned_ones_with_the_builtin_scorer() {
    check(None);
}

#[test]
fn the_bench_decisions_are_the_pinned_ones_with_the_dense_model_runtime() {
    check(Some(RuntimeKind::Dense));
}

#[test]
#[ignore = "writes tests/golden/decide-*.txt; run it only to change the pinned decisions on purpose"]
fn write_golden_files() {
    for scorer in [None, Some(RuntimeKind::Dense)] {
        let lines: Vec<String> = replay(scorer).into_iter().map(|(line, _)| line).collect();
        std::fs::write(golden(scorer), lines.join("\n") + "\n").unwrap();
    }
}
