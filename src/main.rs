fn main() {
    // First, while the process is still single-threaded (it forks).
    forkyard::supervisor::watchdog::start();
    forkyard::supervisor::install_panic_cleanup();
    forkyard::supervisor::own_all_children();
    let cli = match forkyard::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => {
            forkyard::stdio::flush_messages(std::time::Duration::from_secs(1));
            std::process::exit(code)
        }
    };
    let code = match forkyard::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            forkyard::say!("{err:#}");
            1
        }
    };
    forkyard::supervisor::finish_process();
    forkyard::stdio::flush_messages(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
