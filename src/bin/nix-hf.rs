fn main() {
    std::process::exit(nix_hf::cli::main())
}
