//! The program's command line: what each command takes, with the help text
//! `--help` shows. Parsing only; `cli` runs what is asked.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::fetch::DEFAULTS;

const ABOUT: &str = "Hugging Face snapshots for Nix, without the plugin: fetch, hash and pin them, \
exactly as nix-hf's plugin does";

const LONG_ABOUT: &str = "Hugging Face snapshots for Nix, without the plugin.

The same core as nix-hf's plugin: refs resolved to commits, every file verified, \
parallel ranged downloads that resume, and the snapshot's NAR hash and store path exactly \
as the plugin (and so Nix) gives them. It needs no Nix to run; it is what nix-hf's \
fetchHuggingFace runs as a fixed-output derivation where the plugin is not loaded.

A SOURCE is an hf: URL (hf:ORG/NAME, hf:ORG/NAME/REF-OR-REV, hf:datasets/ORG/NAME?include=*.json) \
or a JSON object of fetchHuggingFace's attributes ({\"repo\": \"ORG/NAME\", \"include\": [\"*.json\"]}).

Tokens: HF_TOKEN, the file --token-file names, or the official client's token file, sent only \
to huggingface.co and to the Hub HF_ENDPOINT names.";

#[derive(Parser)]
#[command(name = "nix-hf", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The settings every command takes: the plugin's, under the same names.
#[derive(Args)]
pub struct Global {
    /// The Hub to fetch from (as hf-endpoint) [default: $HF_ENDPOINT, else https://huggingface.co]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,

    /// A file holding a Hugging Face token (as hf-token-file)
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<String>,

    /// Connections to the Hub and its CDN at once (as hf-connections)
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULTS.connections)]
    pub connections: u32,

    /// Seconds a connection may stay silent before the attempt fails (as hf-stall-timeout)
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = DEFAULTS.stall_timeout)]
    pub stall_timeout: u32,

    /// Attempts at each request before giving up (as hf-retries)
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULTS.retries)]
    pub retries: u32,

    /// Seconds from a request's first attempt after which no further one starts (as hf-retry-time)
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = DEFAULTS.retry_time)]
    pub retry_time: u32,

    /// The only CA certificates to trust for https (as Nix's ssl-cert-file) [default: the system's]
    #[arg(long, global = true, value_name = "FILE", env = "NIX_SSL_CERT_FILE")]
    pub ca_file: Option<String>,

    /// Where partial downloads are kept until done, so that a fetch resumes [default:
    /// $XDG_CACHE_HOME/nix-hf, ~/.cache/nix-hf, or in a Nix build its temporary directory]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// The Nix store the printed store paths are in
    #[arg(long, global = true, value_name = "DIR", env = "NIX_STORE_DIR", default_value = crate::nixpath::DEFAULT_STORE_DIR)]
    pub store_dir: String,

    /// Name each file as its download begins
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Run as the builder of nix-hf's derivations (lib.fetchHuggingFace, lib.hubCache): OUT is
    /// $out, written in place
    #[arg(long, global = true)]
    pub nix_build: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Fetch a snapshot, and print its rev, lastModified, narHash and store path as `nix flake
    /// prefetch` does, and a fetchHuggingFace expression that pins it
    Prefetch {
        /// An hf: URL, or a JSON object of fetchHuggingFace's attributes
        source: String,
        /// Print what `nix flake prefetch --json` prints
        #[arg(long)]
        json: bool,
    },

    /// Fetch a snapshot, every file verified, into OUT, a new directory
    Fetch {
        /// An hf: URL, or a JSON object of fetchHuggingFace's attributes
        source: String,
        /// The directory to make [default: $out, with --nix-build]
        out: Option<PathBuf>,
        /// The NAR hash the snapshot must have (sha256-…); nothing is made at OUT otherwise
        #[arg(long, value_name = "HASH")]
        nar_hash: Option<String>,
    },

    /// Keep a pins file (name -> repo, ref, filters, rev, lastModified, narHash), what
    /// nix-hf's lib.fromPins reads: flake.lock's job, for Nix without the plugin
    Pin {
        #[command(subcommand)]
        action: PinAction,
    },

    /// Lay out a Hugging Face cache of snapshots at OUT, as builtins.hfHubCache does (what
    /// lib.hubCache runs)
    HubCache {
        /// A JSON list of snapshots: [{"key": "ORG/NAME", "rev": "<commit>", "refs": ["main"],
        /// "path": "/nix/store/…-source"}, …]
        snapshots: String,
        /// The directory to make [default: $out, with --nix-build]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PinAction {
    /// Pin a snapshot: resolve the URL's ref, fetch and hash the snapshot, and add it
    Add {
        /// An hf: URL (its ref is what `pin update` follows; a commit stays put)
        url: String,
        /// The pin's name [default: the repo's name]
        #[arg(long)]
        name: Option<String>,
        /// The pins file
        #[arg(long, default_value = "hf-pins.json")]
        file: PathBuf,
    },

    /// Move pins to their refs' current commits, as `nix flake update` does
    Update {
        /// The pins to update [default: all]
        names: Vec<String>,
        /// The pins file
        #[arg(long, default_value = "hf-pins.json")]
        file: PathBuf,
    },

    /// Remove pins
    Remove {
        #[arg(required = true)]
        names: Vec<String>,
        /// The pins file
        #[arg(long, default_value = "hf-pins.json")]
        file: PathBuf,
    },
}
