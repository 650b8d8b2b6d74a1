use clap::Parser;

fn main() {
    // First, while the process is still single-threaded (it forks).
    forkyard::supervisor::watchdog::start();
    forkyard::supervisor::install_panic_cleanup();
    forkyard::supervisor::own_all_children();
    let cli = forkyard::cli::Cli::parse();
    let code = match forkyard::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("forkyard: {err:#}");
            1
        }
    };
    forkyard::supervisor::finish_process();
    std::process::exit(code);
}
