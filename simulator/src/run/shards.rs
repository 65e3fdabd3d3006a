//! A run's homes, driven in lockstep: in the run's own process, or split over worker
//! processes when there are more than one process may hold files for.

use std::time::Duration;

use anyhow::bail;
use indicatif::ProgressBar;

use super::RunOptions;
use crate::shard::{Finished, Shard, ShardSpec};
use crate::worker::{Command, Reply, Worker};

/// The homes, in this process or in worker processes.
pub(super) enum Shards {
    Local(Box<Shard>),
    Remote(Vec<Worker>),
}

impl Shards {
    /// Sends `command` to every worker, then reads every reply.
    async fn all(workers: &mut [Worker], command: &Command) -> anyhow::Result<Vec<Reply>> {
        for w in workers.iter_mut() {
            w.send(command).await?;
        }
        let mut replies = Vec::with_capacity(workers.len());
        for w in workers.iter_mut() {
            replies.push(w.reply().await?);
        }
        Ok(replies)
    }

    pub(super) async fn wait_applied(
        &mut self,
        version: u64,
        within: Duration,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        match self {
            Self::Local(shard) => shard.wait_applied(version, within, || bar.inc(1)).await,
            Self::Remote(workers) => {
                Self::all(workers, &Command::WaitApplied { version, within_secs: within.as_secs() }).await?;
                bar.set_position(bar.length().unwrap_or(0));
                Ok(())
            }
        }
    }

    pub(super) async fn begin_day(&mut self, day: u64, steps_per_day: u64) -> anyhow::Result<()> {
        match self {
            Self::Local(shard) => shard.begin_day(day, steps_per_day),
            Self::Remote(workers) => {
                Self::all(workers, &Command::BeginDay { day, steps_per_day }).await?;
            }
        }
        Ok(())
    }

    /// One step everywhere; the agents online, when asked.
    pub(super) async fn step(&mut self, day: u64, step: u64, count_online: bool) -> anyhow::Result<Option<usize>> {
        match self {
            Self::Local(shard) => {
                shard.step(day, step).await?;
                Ok(if count_online { Some(shard.online().await?) } else { None })
            }
            Self::Remote(workers) => {
                let replies = Self::all(workers, &Command::Step { day, step, count_online }).await?;
                let online = replies.iter().map(|r| if let Reply::Stepped { online } = r { *online } else { None });
                Ok(online.sum())
            }
        }
    }

    pub(super) async fn end_day(&mut self) -> anyhow::Result<u64> {
        match self {
            Self::Local(shard) => shard.end_day().await,
            Self::Remote(workers) => {
                let replies = Self::all(workers, &Command::EndDay).await?;
                Ok(replies
                    .iter()
                    .map(|r| if let Reply::DayEnded { reports_expected } = r { *reports_expected } else { 0 })
                    .sum())
            }
        }
    }

    pub(super) async fn finish(self, bar: &ProgressBar) -> anyhow::Result<Vec<Finished>> {
        match self {
            Self::Local(shard) => Ok(vec![shard.finish(|| bar.inc(1)).await?]),
            Self::Remote(mut workers) => {
                let replies = Self::all(&mut workers, &Command::Finish).await?;
                for mut w in workers {
                    let _ = w.wait().await;
                }
                bar.set_position(bar.length().unwrap_or(0));
                Ok(replies
                    .into_iter()
                    .filter_map(|r| if let Reply::Finished(f) = r { Some(*f) } else { None })
                    .collect())
            }
        }
    }
}

/// How long the workers may take to start a run's `homes`: every agent makes its database
/// and flushes it to disk, and the workers share the disk, so a large run's start takes
/// time in proportion to the whole run (about a quarter of an hour for 35,000 homes whose
/// databases are on a virtual disk, against a minute or two on a tmpfs).
fn start_within(homes: usize) -> Duration {
    crate::worker::REPLY_WITHIN + Duration::from_secs(homes as u64 / 20)
}

/// Starts the homes: in this process, or split over worker processes when there are more
/// than `homes_per_process`.
pub(super) async fn start_shards(options: &RunOptions, spec: ShardSpec, bar: &ProgressBar) -> anyhow::Result<Shards> {
    let per = options.homes_per_process.max(1);
    if options.homes <= per {
        return Ok(Shards::Local(Box::new(Shard::start(spec, || bar.inc(1)).await?)));
    }
    let Some(exe) = &options.worker_exe else {
        bail!(
            "{} homes need worker processes ({per} per process fit the open-file limit); run them through the ledtrad-sim executable",
            options.homes
        );
    };
    let slices = options.homes.div_ceil(per);
    let mut workers = Vec::with_capacity(slices);
    for n in 0..slices {
        let mut worker = Worker::spawn(exe, n + 1)?;
        let homes = (n * options.homes / slices, (n + 1) * options.homes / slices);
        let dir = spec.dir.with_file_name(format!("shard-{}", n + 1));
        worker.send(&Command::Start(Box::new(ShardSpec { homes, dir, ..spec.clone() }))).await?;
        workers.push(worker);
    }
    let within = start_within(options.homes);
    for worker in &mut workers {
        if let Reply::Started { devices } = worker.reply_within(within).await? {
            bar.inc(devices as u64);
        }
    }
    Ok(Shards::Remote(workers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_runs_workers_get_longer_to_start_their_homes() {
        assert_eq!(start_within(375), crate::worker::REPLY_WITHIN + Duration::from_secs(18));
        // 35,000 homes whose databases are on a disk took about 1,000 s to start.
        assert!(start_within(35_000) >= Duration::from_secs(2_000), "{:?}", start_within(35_000));
    }
}
