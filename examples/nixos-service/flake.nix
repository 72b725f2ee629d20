{
  description = "A NixOS machine serving a pinned model with llama.cpp, declared with services.hf-models";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.nix-hf.url = "github:nix-hf/nix-hf";
  inputs.nix-hf.inputs.nixpkgs.follows = "nixpkgs";

  inputs.qwen = {
    url = "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF?files=qwen2.5-0.5b-instruct-q4_k_m.gguf";
    flake = false;
  };

  outputs =
    { nixpkgs, nix-hf, ... }@inputs:
    {
      nixosConfigurations.server = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit inputs; };
        modules = [
          nix-hf.nixosModules.default
          ./configuration.nix
        ];
      };
    };
}
