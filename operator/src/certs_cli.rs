//! `ledtrad-op certs`: the fleet's PKI for mutual TLS on the command line (the work is in
//! `ledtrad_operator::certs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Subcommand;
use ledtrad_operator::certs::{self, Issued, Subject, CA_DAYS, DEVICE_DAYS, SERVICE_DAYS};
use ledtrad_protocol::DeviceId;

/// Where the CA is, and where the new files go.
#[derive(Clone, clap::Args)]
pub(crate) struct IssueArgs {
    /// The CA directory (`certs init --dir`), holding ca.pem and ca.key.
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// Directory to write NAME.pem and NAME.key (0600) into (created if missing); the CA
    /// directory unless given.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Create the fleet CA: DIR/ca.pem (give it to every client and to the broker as its
    /// cafile) and DIR/ca.key (0600: keep it offline, like the operator key).
    Init {
        /// Directory to write ca.pem and ca.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "ledtrad fleet CA")]
        name: String,
        /// Days it is valid.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
    },
    /// Issue the broker's server certificate (broker.pem, broker.key) for the names devices
    /// connect to.
    Broker {
        #[command(flatten)]
        issue: IssueArgs,
        /// A DNS name or IP address in the devices' mqtts:// URL (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Days it is valid.
        #[arg(long, default_value_t = SERVICE_DAYS)]
        days: u32,
    },
    /// Issue a device's certificate (ID.pem, ID.key): its identity is the device id, which the
    /// broker takes as the username, so the ACL gives it its own topics only.
    Device {
        #[command(flatten)]
        issue: IssueArgs,
        /// The device id (the agent config's device_id).
        #[arg(long)]
        device: DeviceId,
        /// Days it is valid.
        #[arg(long, default_value_t = DEVICE_DAYS)]
        days: u32,
    },
    /// Issue the operator's client certificate (operator.pem, operator.key) for `push`,
    /// `publish`, `status` and `rollout`.
    Operator {
        #[command(flatten)]
        issue: IssueArgs,
        /// The broker user it stands for (the ACL's `user operator`).
        #[arg(long, default_value = "operator")]
        name: String,
        /// Days it is valid.
        #[arg(long, default_value_t = SERVICE_DAYS)]
        days: u32,
    },
    /// Issue a report collector's and offer service's client certificate (NAME.pem, NAME.key)
    /// for `serve`.
    Collector {
        #[command(flatten)]
        issue: IssueArgs,
        /// The broker user it stands for (the ACL's `user offer-service`).
        #[arg(long, default_value = "offer-service")]
        name: String,
        /// Days it is valid.
        #[arg(long, default_value_t = SERVICE_DAYS)]
        days: u32,
    },
    /// Revoke every unexpired certificate the CA issued to NAME (a device id, or a service
    /// user), and write the CA's revocation list anew (DIR/ca.crl): copy it to the broker's
    /// crlfile and restart the broker.
    Revoke {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The device id or service user whose certificates to revoke.
        name: String,
        /// Days the revocation list is valid: sign it again (`certs crl`) before then, or the
        /// broker refuses every client.
        #[arg(long, default_value_t = CRL_DAYS)]
        crl_days: u32,
    },
    /// Sign the CA's revocation list again (DIR/ca.crl) with fresh dates, for the broker's
    /// crlfile; run it more often than --days (e.g. weekly from cron with the default 30).
    Crl {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// Days it is valid.
        #[arg(long, default_value_t = CRL_DAYS)]
        days: u32,
    },
}

/// Days a revocation list is valid unless told.
const CRL_DAYS: u32 = 30;

/// Runs a `certs` command and says what it wrote and what to do with it.
pub(crate) fn run(command: CertsCommand) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    match command {
        CertsCommand::Init { dir, name, days } => {
            let issued = certs::init(&dir, &name, days, now)?;
            say(&issued, "the fleet CA");
            println!(
                "give {} to the broker (cafile) and to every client (ca_file / --ca-file); keep {} offline",
                issued.cert.display(),
                issued.key.display()
            );
        }
        CertsCommand::Broker { issue, hosts, days } => {
            let issued = issue.issue(&Subject::Broker { hosts }, days, now)?;
            say(&issued, "the broker");
            println!("in the broker's config: certfile {}, keyfile {}", issued.cert.display(), issued.key.display());
        }
        CertsCommand::Device { issue, device, days } => {
            let issued = issue.issue(&Subject::Device(device.clone()), days, now)?;
            say(&issued, &format!("device '{device}'"));
            println!(
                "in its agent config: cert_file = \"{}\", key_file = \"{}\" (copy both to the device; the key stays 0600)",
                issued.cert.display(),
                issued.key.display()
            );
        }
        CertsCommand::Revoke { ca, name, crl_days } => {
            let serials = certs::revoke(&ca, &name, crl_days, now)?;
            println!(
                "revoked {} certificate(s) of '{name}' (serial {}); wrote {}: copy it to the broker's crlfile and restart the broker",
                serials.len(),
                serials.join(", "),
                ca.join(certs::CRL).display()
            );
        }
        CertsCommand::Crl { ca, days } => {
            let path = certs::write_crl(&ca, days, now)?;
            println!(
                "wrote {}, valid {days} days: copy it to the broker's crlfile and reload the broker",
                path.display()
            );
        }
        CertsCommand::Operator { issue, name, days } | CertsCommand::Collector { issue, name, days } => {
            let issued = issue.issue(&Subject::Service(name.clone()), days, now)?;
            say(&issued, &format!("broker user '{name}'"));
            println!("use it with --cert-file {} --key-file {}", issued.cert.display(), issued.key.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl IssueArgs {
    fn issue(&self, subject: &Subject, days: u32, now: SystemTime) -> anyhow::Result<Issued> {
        let out: &Path = self.out.as_deref().unwrap_or(&self.ca);
        Ok(certs::issue(&self.ca, subject, days, out, now)?)
    }
}

fn say(issued: &Issued, whom: &str) {
    let seconds = issued.not_after.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let until = ledtrad_protocol::UnixTime(seconds);
    println!("wrote {} and {} (0600) for {whom}, valid until {until}", issued.cert.display(), issued.key.display());
}
