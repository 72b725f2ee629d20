//! The Rust core of nix-hf: everything that is not Nix. Parsing and checking
//! inputs (`spec`, `select`); the C++ glue in `cpp/` reaches it only through
//! the bridge in `ffi`.

pub mod ffi;
pub mod select;
pub mod spec;
