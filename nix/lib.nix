# nix-hf for any Nix, with or without the plugin (README, Without the
# plugin): fetchHuggingFace, fromPins and hubCache, with the interfaces of
# the plugin's builtins.
#
# With the plugin loaded they are its builtins. Without (Lix, a Nix with no
# build of nix-hf, Hydra, a teammate), fetchHuggingFace is a fixed-output
# derivation whose builder is the nix-hf program: named "source", its hash
# the recursive SHA-256 of the snapshot's NAR, which is narHash, so its store
# path is the one the plugin gives the same snapshot, and a binary cache
# filled by either serves both. hubCache is then a small derivation of
# links, laid out by the same program.
#
# Pure Nix, no nixpkgs: the flake and the overlay say which program to run
# and which CA certificates it trusts; a call may say so too (`program`,
# `caFile`, `system`), which is how the tests run a program from the build
# tree.
{
  # The nix-hf program for a system: a path or a string.
  programFor ? system: throw "nix-hf: no nix-hf program for ${system}; pass program = …/bin/nix-hf",
  # The CA certificates its downloads trust, for a system (null: the
  # machine's, which a sandboxed build does not have).
  caFileFor ? system: null,
  # The system to build on when a call names none.
  system ? builtins.currentSystem or null,
}:

let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    filter
    getContext
    isAttrs
    isList
    isString
    mapAttrs
    removeAttrs
    replaceStrings
    stringLength
    substring
    toJSON
    ;

  # What builtins.fetchHuggingFace takes, and what only the fallback does.
  attributes = [
    "repo"
    "kind"
    "ref"
    "rev"
    "include"
    "exclude"
    "files"
    "narHash"
    "lastModified"
  ];
  settings = [
    "program"
    "caFile"
    "system"
  ];

  systemOf =
    args: what:
    if args.system or system != null then
      args.system or system
    else
      throw "${what}: without the nix-hf plugin this is a derivation, which needs a system; pass system = \"x86_64-linux\" (or use pkgs.${what} from nix-hf's overlay)";

  # The environment a fetch takes from the process that builds (the
  # nix-daemon, in a multi-user install): the token and the Hub, as the
  # official client reads them, and its cache, from which unchanged files
  # are taken rather than downloaded.
  impureEnvVars = [
    "HF_TOKEN"
    "HUGGING_FACE_HUB_TOKEN"
    "HF_TOKEN_PATH"
    "HF_HUB_DISABLE_IMPLICIT_TOKEN"
    "HF_ENDPOINT"
    "HF_HOME"
    "HF_HUB_CACHE"
  ];

  pad =
    width: n:
    let
      s = toString n;
    in
    if stringLength s >= width then s else pad width "0${s}";

  # lastModifiedDate as fetchTree gives it: %Y%m%d%H%M%S, UTC. (Days to a
  # civil date by Howard Hinnant's algorithm.)
  dateOf =
    t:
    let
      days = t / 86400;
      secs = t - days * 86400;
      z = days + 719468;
      era = z / 146097;
      doe = z - era * 146097;
      yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
      doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
      mp = (5 * doy + 2) / 153;
      day = doy - (153 * mp + 2) / 5 + 1;
      month = if mp < 10 then mp + 3 else mp - 9;
      year = yoe + era * 400 + (if month <= 2 then 1 else 0);
    in
    concatStringsSep "" [
      (pad 4 year)
      (pad 2 month)
      (pad 2 day)
      (pad 2 (secs / 3600))
      (pad 2 (secs / 60 - secs / 3600 * 60))
      (pad 2 (secs - secs / 60 * 60))
    ];

  # As the plugin gives them: a lowercase commit, an SRI hash (where this
  # Nix can convert one; the store path is the same either way).
  lower = replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ];
  sri =
    hash:
    if builtins ? convertHash then
      builtins.convertHash {
        inherit hash;
        hashAlgo = "sha256";
        toHashFormat = "sri";
      }
    else
      hash;

  fail = repo: msg: throw "fetchHuggingFace '${repo}' (without the nix-hf plugin): ${msg}";

  # The fixed-output derivation. It needs what pure evaluation needs of the
  # builtin: the commit and the hash.
  fallback =
    args:
    let
      given = removeAttrs args settings;
      unknown = attrNames (removeAttrs given attributes);
      repo = args.repo or (throw "fetchHuggingFace: attribute 'repo' is required (\"ORG/NAME\")");
      system' = systemOf args "fetchHuggingFace";
      program = args.program or (programFor system');
      caFile = args.caFile or (caFileFor system');
      prefetch = "run 'nix-hf prefetch hf:${if (args.kind or "model") == "model" then "" else "${args.kind}s/"}${repo}' to get both";
      checked =
        if unknown != [ ] then
          fail repo "unknown attribute '${builtins.head unknown}'; it takes ${concatStringsSep ", " attributes} (and program, caFile, system)"
        else if !(args ? rev && args ? narHash) then
          fail repo "a fixed-output derivation needs both 'rev' and 'narHash' in advance; ${prefetch}"
        else if args ? ref then
          fail repo "'ref' and 'rev' exclude each other; keep 'rev' (the commit 'ref' pointed to)"
        else
          given;
      drv = derivation (
        {
          name = "source";
          system = system';
          builder = program;
          # The program checks the input as the plugin would; the hash is
          # Nix's to check, so a mismatch reads as Nix's own and leaves no path.
          # --nix-build: the program is a builder, writing $out in place.
          args = [
            "--nix-build"
            "fetch"
            (toJSON (removeAttrs checked [
              "narHash"
              "lastModified"
            ]))
          ];
          outputHashMode = "recursive";
          outputHashAlgo = "sha256";
          outputHash = args.narHash;
          inherit impureEnvVars;
          preferLocalBuild = true;
        }
        // (if caFile == null then { } else { NIX_SSL_CERT_FILE = caFile; })
      );
      rev = lower args.rev;
    in
    # Strict: a refused call fails where it is made, not where the path
    # is first built.
    builtins.seq checked drv
    // {
      inherit rev;
      narHash = sri args.narHash;
      shortRev = substring 0 7 rev;
    }
    // (
      if args ? lastModified then
        {
          inherit (args) lastModified;
          lastModifiedDate = dateOf args.lastModified;
        }
      else
        { }
    );

  fetchHuggingFace =
    args:
    if builtins ? fetchHuggingFace then
      builtins.fetchHuggingFace (if isAttrs args then removeAttrs args settings else args)
    else if isAttrs args then
      fallback args
    else
      throw "fetchHuggingFace '${toString args}' (without the nix-hf plugin): give an attribute set with repo, rev and narHash ('nix-hf prefetch ${toString args}' prints one)";

  # A pins file (nix-hf pin add / update): each pin through fetchHuggingFace.
  fromPins =
    arg:
    let
      opts = if isAttrs arg then arg else { file = arg; };
      inherit (opts) file;
      read = builtins.fromJSON (builtins.readFile file);
      pins =
        if (read.version or null) == 1 then
          read.pins
        else
          throw "lib.fromPins: ${toString file} is not a nix-hf pins file of version 1 (nix-hf pin add writes one)";
      lists = p: filter (k: p ? ${k}) [ "include" "exclude" "files" ];
    in
    mapAttrs (
      name: p:
      fetchHuggingFace (
        {
          inherit (p) repo kind rev lastModified;
          narHash =
            p.narHash or (throw "lib.fromPins: pin '${name}' in ${toString file} has no narHash; run 'nix-hf pin update ${name}'");
        }
        // builtins.listToAttrs (map (k: { name = k; value = p.${k}; }) (lists p))
        // removeAttrs opts [ "file" ]
      )
    ) pins;

  # builtins.hfHubCache's argument, as a list of { key, rev, refs, path }.
  snapshotsOf =
    snapshots:
    let
      one =
        key: given:
        let
          tree = given.snapshot or given;
        in
        {
          inherit key;
          rev =
            given.rev or tree.rev
              or (throw "lib.hubCache: the snapshot of '${key}' has no 'rev'; pass a flake input or a fetchHuggingFace result (they carry it), or { snapshot = …; rev = \"<commit>\"; }");
          refs = given.refs or [ "main" ];
          path = "${tree}";
        };
    in
    concatLists (
      map (key: map (one key) (if isList snapshots.${key} then snapshots.${key} else [ snapshots.${key} ])) (
        attrNames snapshots
      )
    );

  # Whether a string refers only to store paths that exist (not to outputs
  # of derivations still to build): what builtins.hfHubCache needs.
  existing = s: builtins.all (c: c ? path) (builtins.attrValues (getContext s));

  hubCache =
    snapshots:
    let
      all = snapshotsOf snapshots;
      # Built where the snapshots are (a fallback fetch names its system),
      # so pure evaluation needs no currentSystem.
      systems = filter (s: s != null) (
        map (t: (t.snapshot or t).system or null) (concatLists (map (v: if isList v then v else [ v ]) (builtins.attrValues snapshots)))
      );
      system' = if systems != [ ] then builtins.head systems else systemOf { } "hfHubCache";
    in
    if builtins ? hfHubCache && builtins.all (s: existing s.path) all then
      builtins.hfHubCache snapshots
    else
      derivation {
        name = "hf-hub-cache";
        system = system';
        builder = programFor system';
        args = [
          "--nix-build"
          "hub-cache"
          (toJSON all)
        ];
        preferLocalBuild = true;
        allowSubstitutes = false;
      };
in
{
  inherit fetchHuggingFace fromPins hubCache;
}
