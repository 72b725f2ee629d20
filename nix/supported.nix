# The Nix releases (major.minor) nix-hf has builds for, from ./versions (the
# list all the tooling reads), and which Nix packages those are: the NixOS
# modules' check of nix.package, and which Nix packages get a build.
# Upstream releases are named major.minor in ./versions (an unreleased one
# with "pre"), Determinate Nix's "det-major.minor". Builtins only: the
# modules import it before any lib is at hand.
let
  lines = builtins.filter (l: builtins.isString l && l != "" && builtins.substring 0 1 l != "#") (
    builtins.split "\n" (builtins.readFile ./versions)
  );
  releases = map (l: builtins.head (builtins.match "([^[:space:]]+)[[:space:]].*" l)) lines;
  isDet = r: builtins.substring 0 4 r == "det-";
  majorMinor = version: builtins.head (builtins.match "([0-9]+\\.[0-9]+).*" version);
in
rec {
  upstream = map majorMinor (builtins.filter (r: !isDet r) releases);
  determinate = map (r: builtins.substring 4 (-1) r) (builtins.filter isDet releases);

  # Determinate Nix's package, as its flake names it.
  isDeterminate = nixPackage: (builtins.parseDrvName nixPackage.name).name == "determinate-nix";

  # A Nix nix-hf can be built for: upstream Nix or Determinate Nix of a
  # supported release, with its libraries exposed (not Lix, whose plugin API
  # is another).
  hasBuild =
    nixPackage:
    nixPackage != null
    && nixPackage ? libs
    && nixPackage ? version
    && (
      if isDeterminate nixPackage then
        builtins.elem (majorMinor nixPackage.version) determinate
      else
        (builtins.parseDrvName nixPackage.name).name == "nix" && builtins.elem (majorMinor nixPackage.version) upstream
    );

  # The folder of its build in an installed tree, which the loader looks for.
  buildName = nixPackage: if isDeterminate nixPackage then "determinate-${nixPackage.version}" else nixPackage.version;
}
