# The nix-hf packages of one nixpkgs: a build for each supported Nix it has
# (nixVersions.nix_2_34, nixVersions.nix_2_35, and nix itself when it is
# one of them), `default`, which serves them all behind one loader (and
# has the nix-hf program), and `cli`, the program alone.
# (Determinate Nix comes from its own flake, not nixpkgs: the modules build
# for it when it is nix.package.)
{
  lib,
  callPackage,
  runCommand,
  nix,
  nixVersions,
}:

let
  supported = import ./supported.nix;
  inherit (supported) hasBuild;

  forNix = nixPackage: callPackage ./package.nix { nix = nixPackage; };
  inherit (callPackage ./source.nix { }) pluginFile;

  # nixVersions' name for a release: "2.35" -> nix_2_35.
  attrName = release: "nix_${lib.replaceStrings [ "." ] [ "_" ] release}";

  # One build per Nix release this nixpkgs has, named as nixVersions names it.
  nixes = lib.filter hasBuild ([ nix ] ++ map (v: nixVersions.${attrName v} or null) supported.upstream);
  builds = lib.listToAttrs (
    map (n: lib.nameValuePair (attrName (lib.versions.majorMinor n.version)) (forNix n)) nixes
  );

  # One loader (a real file: it finds the builds beside its own path) and
  # every build, each in the folder named by its Nix's exact version.
  combine =
    builds:
    let
      combined =
        runCommand "nix-hf-${(lib.head builds).version}"
          {
            passthru = {
              inherit builds;
              plugin = "${combined}/${pluginFile}";
            };
            meta = (lib.head builds).meta // {
              description = "Hugging Face models and datasets as reproducible Nix inputs (Nix plugin)";
            };
          }
          ''
            mkdir -p $out/lib/nix/plugins $out/lib/nix/nix-hf $out/bin
            cp ${(lib.head builds).plugin} $out/${pluginFile}
            ln -s ${lib.head builds}/bin/nix-hf $out/bin/nix-hf
            ${lib.concatMapStrings (b: ''
              ln -s ${b}/lib/nix/nix-hf/${b.buildName} $out/lib/nix/nix-hf/${b.buildName}
            '') builds}
          '';
    in
    combined;
in
{
  inherit hasBuild forNix builds;
  default = combine (lib.attrValues builds);
  cli = callPackage ./cli.nix { };
}
