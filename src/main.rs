use clap::Parser;

fn main() {
    forkyard::supervisor::install_panic_cleanup();
    forkyard::supervisor::own_all_children();
    let cli = forkyard::cli::Cli::parse();
    let code = match forkyard::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            forkyard::say!("{err:#}");
            1
        }
    };
    std::process::exit(code);
}
