use clap::Parser;

// Resolving a large project allocates and frees many small trees; mimalloc does that about
// twice as fast as the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = tier::args::Cli::parse();
    std::process::exit(tier::run(cli));
}
