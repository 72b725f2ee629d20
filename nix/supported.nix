# The Nix releases (major.minor) nix-hf has builds for, from ./versions (the
# list all the tooling reads): the NixOS modules' check of nix.package, and
# which of nixpkgs' Nix packages get a build.
let
  lines = builtins.filter (l: builtins.isString l && l != "" && builtins.substring 0 1 l != "#") (
    builtins.split "\n" (builtins.readFile ./versions)
  );
in
map (l: builtins.head (builtins.match "([0-9]+\\.[0-9]+)[[:space:]].*" l)) lines
