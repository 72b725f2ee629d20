# nix-hf's source as the builds see it, and its crates, vendored from our
# Cargo.lock (rustPlatform.importCargoLock): no network in any build.
{ lib, rustPlatform }:

{
  version = (lib.importTOML ../Cargo.toml).package.version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../meson.build
      ../build-aux
      ../cpp
      ../src
      ../proptest-regressions
    ];
  };

  cargoDeps = rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };
}
