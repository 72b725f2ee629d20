# nix-hf's source as the builds see it, and its crates, vendored from our
# Cargo.lock (rustPlatform.importCargoLock): no network in any build.
{ lib, rustPlatform }:

{
  version = (lib.importTOML ../Cargo.toml).package.version;

  # The loader, where every build installs it (meson.build names it so on
  # every platform): what plugin-files names.
  pluginFile = "lib/nix/plugins/libnix-hf.so";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../build.rs
      ../meson.build
      ../meson.options
      ../nix/versions
      ../build-aux
      ../cpp
      ../src
      ../tests/seam
      ../proptest-regressions
    ];
  };

  cargoDeps = rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };
}
