/// musl's allocator is slow for tong's start-up pattern; see Cargo.toml.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    std::process::exit(tong::cli::main());
}
