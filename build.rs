// Generates and compiles the C++ half of the cxx bridge. The bridge only
// sees cpp/bridge.hh, which has no Nix types, so building the Rust core needs
// no Nix headers; the Nix-facing glue is compiled by meson.
fn main() {
    cxx_build::bridge("src/ffi.rs").file("cpp/bridge.cc").include("cpp").std("c++20").compile("nix-hf-bridge");
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cpp/bridge.hh");
    println!("cargo:rerun-if-changed=cpp/bridge.cc");
}
