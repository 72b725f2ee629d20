{
  description = "llm with a local embedding model, pinned by nix-hf";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  inputs.minilm = {
    url = "hf:sentence-transformers/all-MiniLM-L6-v2";
    flake = false;
  };

  outputs =
    { nixpkgs, minilm, ... }:
    let
      forAllSystems = nixpkgs.lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];
    in
    {
      devShells = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          default = pkgs.mkShell {
            packages = [ (pkgs.python3Packages.llm.withPlugins { llm-sentence-transformers = true; }) ];
            HF_HUB_CACHE = builtins.hfHubCache { "sentence-transformers/all-MiniLM-L6-v2" = minilm; };
            HF_HUB_OFFLINE = "1";
          };
        }
      );
    };
}
