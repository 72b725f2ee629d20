# The Rust core's unit and property tests (cargo test).
{
  callPackage,
  stdenv,
  cargo,
  rustc,
  rustPlatform,
}:

let
  source = callPackage ./source.nix { };
in
stdenv.mkDerivation {
  pname = "nix-hf-rust-tests";
  inherit (source) version src cargoDeps;
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
