//! The Rust core of nix-hf: everything that is not Nix. Parsing and checking
//! inputs (`spec`, `select`), finding tokens (`token`), talking to the Hub
//! (`hub`), downloading and verifying snapshots (`fetch`, `verify`). The C++
//! glue in `cpp/` reaches it only through the bridge in `ffi`.

pub mod donors;
pub mod download;
pub mod fetch;
pub mod ffi;
pub mod hub;
pub mod nar;
pub mod retry;
pub mod select;
pub mod spec;
pub mod token;
pub mod verify;
