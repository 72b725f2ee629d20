# The Nix releases nix-hf has builds for (major.minor): the NixOS modules'
# check of nix.package, and which of nixpkgs' Nix packages get a build.
[
  "2.34"
  "2.35"
]
