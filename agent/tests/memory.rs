//! Memory the agent freed goes back to the system (a test binary of its own: it reads the
//! process's resident memory, which other tests' threads would move).

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use ledtrad_agent::memory::give_back_freed;

/// Resident memory of this process, bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kib: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().expect("a size in kB");
    kib * 1024
}

#[test]
fn freed_memory_between_live_blocks_leaves_resident_memory_once_given_back() {
    const BLOCKS: usize = 64 * 1024;
    const BLOCK: usize = 1024;
    // 64 MiB written in 1 KiB blocks, then every block freed but one in 64: the free space lies
    // between live blocks, where malloc keeps it resident.
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; BLOCK]).collect();
    let kept: Vec<Vec<u8>> = blocks.into_iter().enumerate().filter(|(i, _)| i % 64 == 0).map(|(_, b)| b).collect();
    let before = resident();
    assert!(give_back_freed(), "the first trim of the process goes ahead");
    let after = resident();
    let freed = (BLOCKS - kept.len()) * BLOCK;
    assert!(
        before.saturating_sub(after) > freed as u64 / 2,
        "resident memory went from {before} to {after} bytes after freeing {freed}"
    );
    // The gap between trims (a unit test of the gate covers it) is not checked here: on a
    // loaded machine a trim and two reads of /proc can take longer than the gap.
    assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), kept.len() * BLOCK);
}
