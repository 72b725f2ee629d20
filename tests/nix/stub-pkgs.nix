# Just enough of nixpkgs' `pkgs`, over the real `lib`, to instantiate
# nix-hf's package expressions and evaluate its modules where nixpkgs
# cannot be fetched. Derivations are real (`nix eval …drvPath` works) but
# their builder only fails: building is what a machine with nixpkgs checks.
# The Nix packages mimic nixpkgs': version, pname, passthru.libs.
{ lib, system }:

let
  fake =
    name: extra:
    derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo stand-in nixpkgs cannot build; exit 1"
        ];
      }
      // extra
    );

  # As nixpkgs': an attribute set, or a function of the final attributes
  # (with finalPackage).
  mkDerivation =
    argsOrFun:
    let
      args =
        if builtins.isFunction argsOrFun then
          lib.fix (final: argsOrFun (final // { finalPackage = result; }))
        else
          argsOrFun;
      name = args.name or "${args.pname}-${args.version}";
      drv = fake name (
        builtins.removeAttrs args [
          "passthru"
          "meta"
          "name"
        ]
      );
      result =
        drv
        // (args.passthru or { })
        // {
          meta = args.meta or { };
          inherit (args) version;
        }
        // lib.optionalAttrs (args ? pname) { inherit (args) pname; };
    in
    result;

  mkNix =
    pname: version:
    fake "${pname}-${version}" { }
    // {
      inherit pname version;
      libs = lib.genAttrs [
        "nix-util"
        "nix-store"
        "nix-fetchers"
        "nix-expr"
        "nix-flake"
        "nix-main"
        "nix-cmd"
      ] (n: fake "${lib.optionalString (pname == "determinate-nix") "determinate-"}${n}-${version}" { });
    };

  tool = n: fake n { };

  pkgs = {
    inherit lib system;
    callPackage = lib.callPackageWith pkgs;
    # Not cross: the build platform's packages are these.
    buildPackages = pkgs;
    stdenv = {
      inherit mkDerivation;
      hostPlatform = lib.systems.elaborate system;
      buildPlatform = lib.systems.elaborate system;
    };
    runCommand =
      name: env: script:
      mkDerivation (
        {
          inherit name;
          version = "";
          buildCommand = script;
        }
        // env
      );
    mkShell =
      args:
      fake "nix-shell" (
        builtins.removeAttrs args [ "inputsFrom" ]
        // {
          inputs = args.inputsFrom or [ ];
        }
      );
    writeShellScriptBin = name: text: fake name { inherit text; };
    llama-cpp = tool "llama-cpp";
    python3Packages = {
      transformers = tool "python3-transformers";
      llm = tool "python3-llm" // {
        withPlugins = plugins: fake "llm-with-plugins" { plugins = builtins.attrNames plugins; };
      };
    };
    meson = tool "meson";
    ninja = tool "ninja";
    pkg-config = tool "pkg-config";
    cargo = tool "cargo";
    rustc = tool "rustc";
    rustfmt = tool "rustfmt";
    python3 = tool "python3" // {
      withPackages = f: fake "python3-env" { packages = f pkgs.python3Packages; };
    };
    rustPlatform = {
      importCargoLock = { lockFile }: fake "cargo-vendor" { lock = builtins.readFile lockFile; };
      cargoSetupHook = tool "cargo-setup-hook";
      buildRustPackage = mkDerivation;
    };
    cacert = tool "cacert";
    nix = mkNix "nix" "2.34.8";
    nixVersions = {
      nix_2_34 = mkNix "nix" "2.34.8";
      nix_2_35 = mkNix "nix" "2.35.2";
      nix_2_33 = mkNix "nix" "2.33.6";
    };
    lix = mkNix "lix" "2.93.3";
    # Determinate Nix's package (from its flake): pname determinate-nix, its
    # own version, and libraries named like upstream's.
    determinate-nix = mkNix "determinate-nix" "3.22.2";
    determinate-nix-old = mkNix "determinate-nix" "3.9.1";
    # A NixOS VM test: its machine is evaluated as far as can be here (the
    # module system over stand-in NixOS options), its script forced.
    testers.runNixOSTest =
      test:
      let
        machine = lib.evalModules {
          modules = [
            ./stub-nixos.nix
            test.nodes.machine
          ];
          specialArgs = { inherit pkgs; };
        };
        failed = lib.filter (a: !a.assertion) machine.config.assertions;
      in
      if failed != [ ] then
        throw (lib.concatMapStrings (a: a.message) failed)
      else
        fake "vm-test-${test.name}" {
          nixSettings = builtins.toJSON machine.config.nix.settings;
          script = test.testScript;
        };
  };
in
pkgs
