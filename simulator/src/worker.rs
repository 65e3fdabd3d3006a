//! Worker processes: a run of more homes than one process may hold files for (each agent keeps
//! its database, its write-ahead log and its broker connection open) gives slices of them to
//! `ledtrad-sim worker` processes. The run sends each worker one command per line of JSON on
//! its standard input and reads one reply per line on its standard output, in lockstep on the
//! virtual clock; the worker's log goes to its standard error.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::shard::{Finished, Shard, ShardSpec};

/// What the run asks of a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Start the shard's agents.
    Start(Box<ShardSpec>),
    /// Wait until every agent applied this catalogue version.
    WaitApplied {
        /// The version.
        version: u64,
        /// Seconds to wait at most.
        within_secs: u64,
    },
    /// Start a simulated day.
    BeginDay {
        /// The day, from 0.
        day: u64,
        /// Steps in a day.
        steps_per_day: u64,
    },
    /// Simulate one step.
    Step {
        /// The day, from 0.
        day: u64,
        /// The step of the day.
        step: u64,
        /// Also count the agents connected to the broker.
        count_online: bool,
    },
    /// End the day.
    EndDay,
    /// Stop the agents and hand back the counts.
    Finish,
}

/// A worker's answer to one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Done.
    Done,
    /// Started this many devices.
    Started {
        /// Devices.
        devices: usize,
    },
    /// Stepped; the agents online, if asked.
    Stepped {
        /// Agents connected to the broker.
        online: Option<usize>,
    },
    /// The day's reports expected.
    DayEnded {
        /// Reports the devices with `measure` should send for the day.
        reports_expected: u64,
    },
    /// The shard's results.
    Finished(Box<Finished>),
    /// The command failed.
    Failed(String),
}

/// Runs a worker: reads commands from standard input until `finish` or its end.
pub async fn serve() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut shard: Option<Shard> = None;
    while let Some(line) = lines.next_line().await? {
        let command: Command =
            serde_json::from_str(&line).with_context(|| format!("a command the worker cannot read: {line:.200}"))?;
        let finish = matches!(command, Command::Finish);
        let reply = match handle(&mut shard, command).await {
            Ok(reply) => reply,
            Err(e) => Reply::Failed(format!("{e:#}")),
        };
        let mut text = serde_json::to_string(&reply)?;
        text.push('\n');
        out.write_all(text.as_bytes()).await?;
        out.flush().await?;
        if finish {
            return Ok(());
        }
    }
    // The run went away: stop the agents cleanly.
    if let Some(shard) = shard {
        shard.finish(|| ()).await?;
    }
    Ok(())
}

async fn handle(shard: &mut Option<Shard>, command: Command) -> anyhow::Result<Reply> {
    Ok(match command {
        Command::Start(spec) => {
            let devices = (spec.homes.0..spec.homes.1)
                .map(|h| crate::home::Home::new(spec.seed, h, &spec.population).devices.len())
                .sum();
            crate::files::allow(crate::files::needed(0, false, devices))?;
            let s = Shard::start(*spec, || ()).await?;
            let devices = s.devices();
            *shard = Some(s);
            Reply::Started { devices }
        }
        Command::WaitApplied { version, within_secs } => {
            started(shard)?.wait_applied(version, Duration::from_secs(within_secs), || ()).await?;
            Reply::Done
        }
        Command::BeginDay { day, steps_per_day } => {
            started(shard)?.begin_day(day, steps_per_day);
            Reply::Done
        }
        Command::Step { day, step, count_online } => {
            let s = started(shard)?;
            s.step(day, step).await?;
            let online = if count_online { Some(s.online().await?) } else { None };
            Reply::Stepped { online }
        }
        Command::EndDay => Reply::DayEnded { reports_expected: started(shard)?.end_day().await? },
        Command::Finish => {
            let s = shard.take().context("the worker has no shard to finish")?;
            let mut finished = s.finish(|| ()).await?;
            finished.peak_rss_bytes = crate::footprint::proc_status("VmHWM").unwrap_or(0);
            Reply::Finished(Box::new(finished))
        }
    })
}

/// How long a worker may take over one command (starting a thousand homes' agents takes
/// well under a minute; starting the homes of a large run may take longer, see
/// `run::shards::start_within`).
pub const REPLY_WITHIN: Duration = Duration::from_secs(600);

/// A worker process, from the run's side.
pub struct Worker {
    // Dropped in this order: the worker's input closes first, then the process is killed.
    stdin: ChildStdin,
    child: Child,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    /// The worker's number, for messages.
    pub number: usize,
}

impl Worker {
    /// Starts `exe worker`.
    pub fn spawn(exe: &Path, number: usize) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker process {number} ({} worker)", exe.display()))?;
        let stdin = child.stdin.take().context("the worker's standard input")?;
        let stdout = BufReader::new(child.stdout.take().context("the worker's standard output")?).lines();
        Ok(Self { stdin, child, stdout, number })
    }

    /// Sends a command without waiting for its reply.
    pub async fn send(&mut self, command: &Command) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(command)?;
        text.push('\n');
        self.stdin.write_all(text.as_bytes()).await.with_context(|| format!("worker {} went away", self.number))?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Waits for the process to end.
    pub async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??)
    }

    /// Reads the reply to the last command: within [`REPLY_WITHIN`], or the worker is taken
    /// for stuck.
    pub async fn reply(&mut self) -> anyhow::Result<Reply> {
        self.reply_within(REPLY_WITHIN).await
    }

    /// Reads the reply to the last command, as [`Worker::reply`], within `within`.
    pub async fn reply_within(&mut self, within: Duration) -> anyhow::Result<Reply> {
        let line = tokio::time::timeout(within, self.stdout.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("worker {} did not answer within {} s", self.number, within.as_secs()))??;
        let Some(line) = line else {
            let status = self.child.wait().await?;
            bail!("worker {} ended without answering ({status})", self.number);
        };
        match serde_json::from_str(&line).with_context(|| format!("worker {}'s reply: {line:.200}", self.number))? {
            Reply::Failed(message) => bail!("worker {}: {message}", self.number),
            reply => Ok(reply),
        }
    }
}

fn started(shard: &mut Option<Shard>) -> anyhow::Result<&mut Shard> {
    shard.as_mut().context("the worker has no shard yet: 'start' comes first")
}
