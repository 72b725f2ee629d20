# The options of home-manager that nix-hf's modules use, declared as
# home-manager declares them (nix.package defaults to null there), for
# lib.evalModules where home-manager itself cannot be fetched.
{ lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  imports = [ ./stub-nixos.nix ];
  options = {
    home.homeDirectory = mkOption {
      type = types.path;
      default = "/home/alice";
    };
    home.sessionVariables = mkOption {
      type = types.attrsOf types.str;
      default = { };
    };
    home.activation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            data = mkOption { type = types.str; };
            after = mkOption { type = types.listOf types.str; };
            before = mkOption { type = types.listOf types.str; };
          };
        }
      );
      default = { };
    };
  };
  config.nix.package = lib.mkOverride 900 null;
}
