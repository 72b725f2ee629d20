# The nix-hf program alone (bin/nix-hf): the Rust core without the plugin,
# which needs no Nix to build or to run. It is what lib.fetchHuggingFace
# runs where the plugin is not loaded (nix/lib.nix), so it depends on
# nothing of Nix's.
{
  lib,
  callPackage,
  rustPlatform,
}:

let
  source = callPackage ./source.nix { };
in
rustPlatform.buildRustPackage {
  pname = "nix-hf-cli";
  inherit (source) version src cargoDeps;

  cargoBuildFlags = [
    "--bin"
    "nix-hf"
  ];

  meta = {
    description = "Hugging Face snapshots for Nix without the plugin: fetch, prefetch, pin";
    homepage = "https://github.com/nix-hf/nix-hf";
    license = lib.licenses.mit;
    mainProgram = "nix-hf";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
