//! Facts about the machine and the process's limits, asked once and shared by every
//! module (config's `replicas = "cores"`, the figures, `--compare`, the supervisor).

use std::sync::OnceLock;

/// CPUs this process may run on.
pub fn cores() -> usize {
    // Asked once: the answer reads cgroup files, and the UI wants it every frame.
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Each running stage holds two or three pipe ends, and the sampler keeps two /proc files
/// open per process of a job's tree: a thousand jobs need more than the common soft
/// limit of 1024 descriptors. The soft limit is raised (up to the hard limit) only as
/// far as `stages` need, with room for a few descendants each: children inherit it, and
/// some programs slow down with a huge one (they close every possible descriptor), so a
/// config of ordinary size leaves it as it was.
pub fn raise_open_file_limit(stages: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = 256 + 16 * u64::try_from(stages).unwrap_or(u64::MAX / 32);
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < need
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, need.min(hard), hard);
    }
}
