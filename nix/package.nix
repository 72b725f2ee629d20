# nix-hf built for one Nix, installed as the tree its loader expects:
#
#   $out/lib/nix/plugins/libnix-hf.so           the loader (what plugin-files names)
#   $out/lib/nix/nix-hf/<version>/libnix-hf.so  the plugin, for exactly that Nix
#
# It links the very Nix libraries (`nix.libs`) of the Nix it is loaded into.
# From nixpkgs (26.05 and unstable): stdenv.mkDerivation, meson, ninja,
# pkg-config, cargo, rustc, rustPlatform.cargoSetupHook (with source.nix's
# lib.fileset, lib.importTOML, rustPlatform.importCargoLock), and the Nix
# package's passthru.libs
# (nix-store, nix-expr, nix-fetchers, nix-util, nix-flake), which
# pkgs/tools/package-management/nix/modular/packaging/everything.nix defines.
{
  lib,
  callPackage,
  stdenv,
  meson,
  ninja,
  pkg-config,
  cargo,
  rustc,
  rustPlatform,
  nix,
}:

let
  source = callPackage ./source.nix { };
  supported = import ./supported.nix;
  determinate = supported.isDeterminate nix;
in
stdenv.mkDerivation (finalAttrs: {
  pname = "nix-hf";
  inherit (source) version src cargoDeps;

  strictDeps = true;

  nativeBuildInputs = [
    meson
    ninja
    pkg-config
    cargo
    rustc
    rustPlatform.cargoSetupHook
  ];

  # Nix 2.34 declares emitTreeAttrs in libflake's headers; 2.35 (and
  # Determinate Nix 3, based on it) in libexpr's.
  buildInputs = [
    nix.libs.nix-store
    nix.libs.nix-expr
    nix.libs.nix-fetchers
    nix.libs.nix-util
  ]
  ++ lib.optional (!determinate && lib.versionOlder nix.version "2.35") nix.libs.nix-flake;

  # Determinate Nix reports the upstream version it is based on; its build
  # is named by its own, which its package's version is.
  mesonFlags = lib.optional determinate "-Ddeterminate_version=${nix.version}";

  postPatch = ''
    patchShebangs build-aux
  '';

  # cargo, run by meson, keeps its state under CARGO_HOME; the vendoring hook
  # put the configuration that points it at the vendored crates there.
  preConfigure = ''
    export CARGO_HOME=$NIX_BUILD_TOP/.cargo
  '';

  # The Rust core's unit and property tests, over the crates meson's cargo
  # build already compiled (its target dir is the build dir's cargo/).
  doCheck = true;
  checkPhase = ''
    runHook preCheck
    cargo test --release --locked --offline --manifest-path ../Cargo.toml --target-dir cargo
    runHook postCheck
  '';

  passthru = {
    inherit nix;
    nixVersion = nix.version;
    # Where in the tree this build is (the loader's folder for its Nix).
    buildName = supported.buildName nix;
    # What plugin-files names.
    plugin = "${finalAttrs.finalPackage}/${source.pluginFile}";
  };

  meta = {
    description = "Hugging Face models and datasets as reproducible Nix inputs (Nix plugin, for Nix ${nix.version})";
    homepage = "https://github.com/nix-hf/nix-hf";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
})
