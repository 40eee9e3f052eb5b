//! The fake Kubernetes API server as a program, for benchmarks that run `tier` and `kubectl`
//! side by side against it: `fake-kube KUBECONFIG CONTEXT` writes a kubeconfig whose one
//! context (CONTEXT) points at the server, prints the server's URL, and serves until killed.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(kubeconfig), Some(context)) = (args.next(), args.next()) else {
        eprintln!("usage: fake-kube KUBECONFIG CONTEXT");
        std::process::exit(2);
    };
    let fake = tier_test::fake_kube::FakeKube::start();
    fake.write_kubeconfig(std::path::Path::new(&kubeconfig), &[&context], &context);
    println!("{}", fake.url());
    loop {
        std::thread::park();
    }
}
