//! The `posbridge` executable: everything lives in the library's [`posbridge::cli`].

fn main() -> std::process::ExitCode {
    posbridge::cli::main()
}
