# The NixOS options the examples set beyond nix-hf's own, declared as
# nixpkgs declares them (nixos/modules/services/misc/llama-cpp.nix,
# system.stateVersion), for evaluating the examples' configurations.
{ lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  options = {
    services.llama-cpp = {
      enable = lib.mkEnableOption "LLaMA C++ server";
      model = mkOption {
        type = types.nullOr types.path;
        default = null;
      };
      port = mkOption {
        type = types.port;
        default = 8080;
      };
    };
    system.stateVersion = mkOption { type = types.str; };
  };
}
