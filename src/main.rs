//! `encaisse`: the daemon and its ops CLI.

fn main() {
    eprintln!("encaisse: under construction");
    std::process::exit(1);
}
