fn main() {
    std::process::exit(tong::cli::main());
}
