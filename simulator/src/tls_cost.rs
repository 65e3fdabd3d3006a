//! `ledtrad-sim bench tls`: what mutual TLS costs a fleet. The same run (same seed, homes and
//! days) against a Mosquitto of its own in plain TCP (`deploy/mosquitto/ledtrad.conf`) and over
//! mutual TLS (`fleet-tls.conf` and `fleet.acl`, a certificate per agent), alternately, and the
//! wall time and CPU time per device of each (the simulator's processes and Mosquitto's).

use serde::Serialize;

use crate::run::{run, OwnBroker, RunOptions};
use crate::summary::Summary;

/// One transport's figures: medians over the rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Transport {
    /// Wall seconds of the whole run (set-up, the simulated days, stopping).
    pub wall_s: f64,
    /// CPU seconds of the simulator's processes (the agents, the audit, the collector).
    pub cpu_s: f64,
    /// CPU seconds of Mosquitto.
    pub broker_cpu_s: f64,
    /// Wall milliseconds per device.
    pub wall_ms_per_device: f64,
    /// CPU milliseconds per device, the simulator's and Mosquitto's together.
    pub cpu_ms_per_device: f64,
}

/// What TLS cost against plain TCP.
#[derive(Debug, Clone, Serialize)]
pub struct TlsCost {
    /// Homes per run.
    pub homes: usize,
    /// Devices (agents) per run.
    pub devices: usize,
    /// Simulated days per run.
    pub days: u64,
    /// Runs per transport.
    pub rounds: usize,
    /// Plain TCP.
    pub plain: Transport,
    /// Mutual TLS.
    pub tls: Transport,
    /// TLS's wall time over plain's (median of the rounds' ratios).
    pub wall_ratio: f64,
    /// TLS's CPU time over plain's (median of the rounds' ratios).
    pub cpu_ratio: f64,
    /// Consent violations the audit found in all the runs (must be 0).
    pub consent_violations: u64,
}

/// Runs `options` `rounds` times in plain TCP and over TLS, alternately, each against a
/// Mosquitto of its own.
pub async fn bench(options: &RunOptions, rounds: usize) -> anyhow::Result<TlsCost> {
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (own, into) in [(OwnBroker::Mosquitto, &mut plain), (OwnBroker::MosquittoTls, &mut tls)] {
            let options = RunOptions { own_broker: own, broker: None, tls: None, ..options.clone() };
            into.push(run(options).await?);
        }
    }
    let devices = plain[0].devices;
    let ratios =
        |of: fn(&Summary) -> f64| median(plain.iter().zip(&tls).map(|(p, t)| of(t) / of(p).max(1e-9)).collect());
    Ok(TlsCost {
        homes: options.homes,
        devices,
        days: options.days,
        rounds,
        plain: Transport::of(&plain, devices),
        tls: Transport::of(&tls, devices),
        wall_ratio: round3(ratios(|s| s.wall_seconds)),
        cpu_ratio: round3(ratios(total_cpu)),
        consent_violations: plain.iter().chain(&tls).map(|s| s.consent_violations).sum(),
    })
}

impl Transport {
    fn of(runs: &[Summary], devices: usize) -> Self {
        let per_device = |seconds: f64| round3(seconds * 1000.0 / devices.max(1) as f64);
        let wall_s = median(runs.iter().map(|s| s.wall_seconds).collect());
        let cpu = median(runs.iter().map(total_cpu).collect());
        Self {
            wall_s: round3(wall_s),
            cpu_s: round3(median(runs.iter().map(|s| s.cpu_seconds).collect())),
            broker_cpu_s: round3(median(runs.iter().map(|s| s.broker_cpu_seconds.unwrap_or(0.0)).collect())),
            wall_ms_per_device: per_device(wall_s),
            cpu_ms_per_device: per_device(cpu),
        }
    }
}

fn total_cpu(summary: &Summary) -> f64 {
    summary.cpu_seconds + summary.broker_cpu_seconds.unwrap_or(0.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
