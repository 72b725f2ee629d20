{
  description = "nix-hf: Hugging Face models and datasets as reproducible Nix inputs (a Nix plugin)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # Nix loads plugins with dlopen on every platform but Windows
      # (src/libmain/plugin.cc), so darwin is listed too.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = lib.genAttrs systems;
      pkgsFor = system: nixpkgs.legacyPackages.${system};
      scopeFor = system: (pkgsFor system).callPackage ./nix/packages.nix { };
      # programs.nix-hf is the same module for NixOS, nix-darwin and
      # home-manager; services.hf-models differs between NixOS and
      # home-manager in where the environment goes.
      plugin = ./nix/module.nix;
      models = import ./nix/hf-models.nix;
      # fetchHuggingFace, fromPins and hubCache for any Nix: the plugin's
      # builtins where it is loaded, else derivations that run the nix-hf
      # program (README, Without the plugin).
      anyNix = import ./nix/lib.nix {
        programFor = system: lib.getExe self.packages.${system}.cli;
        caFileFor = system: "${(pkgsFor system).cacert}/etc/ssl/certs/ca-bundle.crt";
      };
    in
    {
      packages = forAllSystems (
        system:
        let
          scope = scopeFor system;
        in
        scope.builds // { inherit (scope) default cli; }
      );

      # nix-hf built for one Nix package (a Determinate Nix, say), for a
      # nixpkgs' `pkgs`: what the modules do for nix.package.
      lib = {
        forNix = { pkgs, nix }: (pkgs.callPackage ./nix/packages.nix { }).forNix nix;
        # Without the plugin these build on `system` (an argument, else the
        # evaluating machine's in impure evaluation).
        inherit (anyNix) fetchHuggingFace fromPins hubCache;
      };

      overlays.default =
        final: prev:
        let
          scope = final.callPackage ./nix/packages.nix { };
          # A fetch runs on the build platform (a fixed-output derivation's
          # result is the same for every host), so cross sets take the
          # program and certificates built for it.
          forPkgs = import ./nix/lib.nix {
            programFor = _: lib.getExe (final.buildPackages.callPackage ./nix/packages.nix { }).cli;
            caFileFor = _: "${final.buildPackages.cacert}/etc/ssl/certs/ca-bundle.crt";
            inherit (final.stdenv.buildPlatform) system;
          };
        in
        {
          nix-hf = scope.default;
          nix-hf-cli = scope.cli;
          fetchHuggingFace = forPkgs.fetchHuggingFace;
          fetchHuggingFacePins = forPkgs.fromPins;
          hfHubCache = forPkgs.hubCache;
        };

      nixosModules.default = {
        imports = [
          plugin
          (models "nixos")
        ];
      };
      darwinModules.default = plugin;
      homeManagerModules.default = {
        imports = [
          plugin
          (models "home-manager")
        ];
      };

      devShells = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          # meson, ninja, cargo and the development files of the newest
          # supported Nix (from the package's own inputs), rustfmt, and
          # Python for the tests (`python3 -m venv .venv && .venv/bin/pip
          # install -r tests/requirements.txt`).
          default = pkgs.mkShell {
            inputsFrom = [ (lib.last (lib.attrValues (scopeFor system).builds)) ];
            packages = [
              pkgs.rustfmt
              pkgs.python3
            ];
          };
        }
      );

      checks = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          # Every build, each running the Rust core's tests (doCheck).
          plugin = (scopeFor system).default;
        }
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          nixos = import ./nix/vm-test.nix { inherit self pkgs; };
        }
      );
    };
}
