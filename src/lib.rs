//! The Rust core of nix-hf: everything that is not Nix. Layers, each using
//! only those before it:
//!
//! 1. `error`, `base`, `work`: what every layer shares (errors with kinds,
//!    the Hub's address, commits, listed files and their digests, the
//!    observer; the threads of a fetch and the one condition they wait on);
//! 2. `retry` (the one retry runner), `verify`, `nar`, `select`, `spec`,
//!    `cache` (a Hugging Face cache's layout, and where the official client
//!    keeps its files), `token`, `xet` (Xet's hashes, chunks and
//!    reconstruction answers): pure or nearly so;
//! 3. `hub`: HTTP to the Hub;
//! 4. `donors` (contents already on this machine) and `download` (the
//!    transfer engine);
//! 5. `fetch`: a snapshot, from ref to verified tree;
//! 6. `ffi`: the bridge to the C++ glue in `cpp/`; `cli`: the command-line
//!    program (with `nixpath`, how Nix names what it makes), for Nix
//!    without the plugin.

mod base;
mod cache;
pub mod cli;
mod donors;
mod download;
mod error;
mod fetch;
mod ffi;
mod gitpack;
mod hub;
mod nar;
mod nixpath;
mod regular;
mod retry;
mod select;
mod spec;
mod token;
mod verify;
mod work;
mod xet;
