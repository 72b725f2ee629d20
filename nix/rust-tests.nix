# The Rust core's unit and property tests (cargo test), with the crates
# vendored from Cargo.lock: no network in the build.
{
  lib,
  stdenv,
  cargo,
  rustc,
  rustPlatform,
}:

stdenv.mkDerivation {
  pname = "nix-hf-rust-tests";
  version = (lib.importTOML ../Cargo.toml).package.version;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../cpp/bridge.hh
      ../src
      ../proptest-regressions
    ];
  };
  cargoDeps = rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };
  nativeBuildInputs = [
    cargo
    rustc
    rustPlatform.cargoSetupHook
  ];
  buildPhase = ''
    runHook preBuild
    export CARGO_HOME=$NIX_BUILD_TOP/.cargo
    cargo test --release --locked --offline
    runHook postBuild
  '';
  installPhase = "touch $out";
}
