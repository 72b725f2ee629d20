# The options of NixOS, nix-darwin and home-manager that nix-hf's modules
# use, declared as those systems declare them (nix.package defaults to
# pkgs.nix, as on NixOS; home-manager's default is null), for
# lib.evalModules where NixOS itself cannot be fetched.
{ lib, pkgs, ... }:

let
  inherit (lib) mkOption types;
  confAtom = types.nullOr (
    types.oneOf [
      types.bool
      types.int
      types.float
      types.str
      types.path
      types.package
    ]
  );
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    nix.package = mkOption {
      type = types.nullOr types.package;
      default = pkgs.nix;
    };
    nix.settings = mkOption {
      type = types.submodule { freeformType = types.attrsOf (types.either confAtom (types.listOf confAtom)); };
      default = { };
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    environment.variables = mkOption {
      type = types.attrsOf types.str;
      default = { };
    };
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.source = mkOption {
            type = types.nullOr types.path;
            default = null;
          };
          options.text = mkOption {
            type = types.nullOr types.lines;
            default = null;
          };
        }
      );
      default = { };
    };
    systemd.services = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.environment = mkOption {
            type = types.attrsOf types.str;
            default = { };
          };
        }
      );
      default = { };
    };
  };
}
