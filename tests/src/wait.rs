//! Waiting until something holds, with a deadline: the one way these tests wait on a state
//! they can only look at (an agent's status, a store's rows, a process), failing with what was
//! awaited and the last value seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How long to wait between two looks. Short: a look is cheap, and a test waits no longer than
/// the state takes to change plus this.
const BETWEEN_LOOKS: Duration = Duration::from_millis(10);

/// Looks with `look` until `holds` is true of what it saw, and returns that value. After
/// `within` it panics, naming `what` was awaited and the last value seen.
///
/// The deadline is on tokio's clock, so under `tokio::time::pause` it passes in virtual time.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut look: F, holds: impl Fn(&T) -> bool) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = look().await;
        if holds(&seen) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
        );
        tokio::time::sleep(BETWEEN_LOOKS).await;
    }
}

/// [`wait_until`] for a look that blocks (a child process, a socket), on a thread of its own
/// or inside `tokio::task::block_in_place`.
pub fn wait_until_blocking<T: Debug>(
    what: &str,
    within: Duration,
    mut look: impl FnMut() -> T,
    holds: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        let seen = look();
        if holds(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
        );
        std::thread::sleep(BETWEEN_LOOKS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a paused clock the deadline passes in virtual time: the test takes no real time.
    #[tokio::test(start_paused = true)]
    async fn a_state_that_never_comes_is_named_with_the_last_value_seen() {
        let waiting = tokio::spawn(wait_until("seven", Duration::from_secs(60), || async { 6 }, |n| *n == 7));
        let panic = waiting.await.expect_err("it times out").into_panic();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert_eq!(message, "timed out after 60s waiting for seven; last seen: 6");
    }

    #[tokio::test(start_paused = true)]
    async fn the_value_that_holds_is_returned() {
        let mut n = 0;
        let seen = wait_until(
            "three",
            Duration::from_secs(1),
            || {
                n += 1;
                std::future::ready(n)
            },
            |n| *n == 3,
        )
        .await;
        assert_eq!(seen, 3);
    }

    #[test]
    fn a_blocking_look_is_named_too() {
        let panic = std::panic::catch_unwind(|| wait_until_blocking("true", Duration::ZERO, || false, |b| *b))
            .expect_err("it times out");
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert_eq!(message, "timed out after 0ns waiting for true; last seen: false");
    }
}
