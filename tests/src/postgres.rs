//! A PostgreSQL database of its own for a test, made on the server `LEDTRAD_TEST_POSTGRES`
//! names (default `postgres://root@127.0.0.1:5432/ledtrad_test`, which `scripts/postgres`
//! sets up) and dropped when the test ends. Without a server the test says it skipped, unless
//! `LEDTRAD_REQUIRE_POSTGRES` is set (as in CI).

use crate::require::present_or_skip;

/// Set to fail, instead of skipping, a test that needs PostgreSQL where none answers.
pub const REQUIRE_POSTGRES: &str = "LEDTRAD_REQUIRE_POSTGRES";

/// The server tests make their databases on, by a database there they can connect to.
pub const TEST_POSTGRES: &str = "LEDTRAD_TEST_POSTGRES";

const DEFAULT_SERVER: &str = "postgres://root@127.0.0.1:5432/ledtrad_test";

/// A database made for one test; dropped, with whatever it holds, when this is.
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new, empty database named after `prefix`, or `None` (said on stderr) where no
    /// server answers and `LEDTRAD_REQUIRE_POSTGRES` is not set. Call it off the async
    /// runtime's threads (`tokio::task::block_in_place`): the client blocks.
    pub fn create(prefix: &str) -> Option<TestDatabase> {
        let admin = std::env::var(TEST_POSTGRES).unwrap_or_else(|_| DEFAULT_SERVER.into());
        let client = connect(&admin);
        let fix = format!("scripts/postgres installs and starts PostgreSQL, or set {TEST_POSTGRES} to a database URL");
        let missing = match &client {
            Ok(_) => String::new(),
            Err(e) => format!("PostgreSQL at {admin} does not answer ({e})"),
        };
        if !present_or_skip(client.is_ok(), &missing, REQUIRE_POSTGRES, &fix) {
            return None;
        }
        let mut client = client.expect("present");
        let name = crate::unique(prefix).replace('-', "_");
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("creating a test database");
        let (base, _) = admin.rsplit_once('/').expect("a database URL ends in /DATABASE");
        let url = format!("{base}/{name}");
        Some(TestDatabase { admin, name, url })
    }

    /// Its URL, for `--reports` and `--db`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // On a thread of its own: the client blocks, and a test may drop this on its runtime.
        let dropped = std::thread::spawn(move || {
            connect(&admin)?.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(5));
    config.connect(postgres::NoTls)
}
