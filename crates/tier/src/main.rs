use clap::Parser;

fn main() {
    let cli = tier::args::Cli::parse();
    std::process::exit(tier::run(cli));
}
