{
  description = "llama.cpp serving one quantization out of a GGUF repo that holds many, pinned by nix-hf";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  # Only the one file named in `files` is fetched, not the whole repo.
  inputs.qwen = {
    url = "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF?files=qwen2.5-0.5b-instruct-q4_k_m.gguf";
    flake = false;
  };

  outputs =
    {
      self,
      nixpkgs,
      qwen,
    }:
    let
      forAllSystems = nixpkgs.lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];
      model = "${qwen}/qwen2.5-0.5b-instruct-q4_k_m.gguf";
    in
    {
      packages = forAllSystems (system: {
        default = nixpkgs.legacyPackages.${system}.writeShellScriptBin "serve-qwen" ''
          exec ${nixpkgs.legacyPackages.${system}.llama-cpp}/bin/llama-server -m ${model} "$@"
        '';
      });

      apps = forAllSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/serve-qwen";
        };
      });
    };
}
