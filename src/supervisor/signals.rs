//! Signals to whole process groups, and liveness of a group.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Sends `signal` to every process in the group. A group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) -> Result<(), Errno> {
    match killpg(Pid::from_raw(pgid as i32), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// True while any process (zombies included) is still in the group.
pub fn group_alive(pgid: u32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    match nix::sys::signal::killpg(Pid::from_raw(pgid as i32), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        // EPERM: something exists that we may not signal; it still counts as alive.
        Err(_) => true,
    }
}

/// Accepts `TERM`, `SIGTERM`, `term` or a number such as `15`.
pub fn parse_signal(text: &str) -> Option<Signal> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>().ok()
}

/// Signals offered in menus, most useful first.
pub const COMMON_SIGNALS: [Signal; 10] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGKILL,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGSTOP,
    Signal::SIGCONT,
    Signal::SIGWINCH,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_spellings() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigint"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
