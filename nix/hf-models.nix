# services.hf-models: models (and datasets) declared in a NixOS or
# home-manager configuration, fetched and pinned at evaluation by nix-hf,
# handed to services as store paths and as one Hugging Face cache
# (HF_HUB_CACHE). Nothing runs at boot: every path is in the store, pinned
# by rev and narHash, and in the system's closure.
#
# `host` is "nixos" or "home-manager": what differs is where the
# environment goes (systemd services and /etc/profile, or the user's
# session and ~/.cache/huggingface/hub).
host:
{
  config,
  lib,
  ...
}:

let
  inherit (lib) mkOption types;
  cfg = config.services.hf-models;
  nixos = host == "nixos";

  # builtins.fetchHuggingFace and builtins.hfHubCache exist only in a nix
  # that has nix-hf loaded: the one evaluating this configuration.
  plugin =
    name:
    builtins.${name} or (throw ''
      services.hf-models needs nix-hf loaded into the nix that evaluates this configuration, which has no
      builtins.${name}. Enable programs.nix-hf and rebuild once without models, or pass the plugin for one run:
      --option plugin-files <nix-hf>/lib/nix/plugins/libnix-hf.so (see nix-hf's README, Install).
    '');

  # The repo as hf: URLs and the cache name it (datasets/ORG/NAME).
  repoKey = m: if m.kind == "model" then m.repo else "${m.kind}s/${m.repo}";

  fetch =
    name: m:
    if m.source != null then
      m.source
    else if m.rev == null || m.narHash == null then
      throw ''
        services.hf-models.models.${name}: give rev and narHash to pin ${repoKey m}.
        `nix flake prefetch hf:${repoKey m}` prints both (the commit as locked.rev, and the hash).
      ''
    else
      (plugin "fetchHuggingFace") (
        {
          inherit (m) repo kind rev narHash;
        }
        // lib.filterAttrs (_: v: v != [ ]) { inherit (m) include exclude files; }
      );

  snapshots = lib.mapAttrs fetch cfg.models;

  cached = lib.filterAttrs (_: m: m.inCache) cfg.models;
  cache = (plugin "hfHubCache") (
    lib.zipAttrsWith (_: snapshotsOfRepo: snapshotsOfRepo) (
      lib.mapAttrsToList (name: m: {
        ${repoKey m} = {
          snapshot = snapshots.${name};
          inherit (m) refs;
        };
      }) cached
    )
  );

  environment = {
    HF_HUB_CACHE = "${cfg.cache}";
  }
  // lib.optionalAttrs cfg.offline { HF_HUB_OFFLINE = "1"; };

  model = types.submodule (
    { name, ... }:
    {
      options = {
        repo = mkOption {
          type = types.str;
          example = "sentence-transformers/all-MiniLM-L6-v2";
          description = "The repo id on the Hub (`ORG/NAME`).";
        };
        kind = mkOption {
          type = types.enum [
            "model"
            "dataset"
            "space"
          ];
          default = "model";
          description = "What the repo is on the Hub: a model, a dataset or a space.";
        };
        rev = mkOption {
          type = types.nullOr (types.strMatching "[0-9a-fA-F]{40}");
          default = null;
          example = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
          description = "The commit (40 hex digits). `nix flake prefetch hf:ORG/NAME` prints it.";
        };
        narHash = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The snapshot's hash (`sha256-…`), checked. `nix flake prefetch` prints it.";
        };
        include = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "*.json"
            "*.safetensors"
          ];
          description = "Globs of the files to fetch (everything when neither include nor files is given).";
        };
        exclude = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "original/*" ];
          description = "Globs of files not to fetch, even when `include` or `files` names them.";
        };
        files = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "qwen2.5-0.5b-instruct-q4_k_m.gguf" ];
          description = "Exact paths of the files to fetch.";
        };
        source = mkOption {
          type = types.nullOr (
            types.addCheck types.attrs (s: s ? outPath && s ? rev)
            // {
              description = "snapshot (an attribute set with outPath and rev)";
            }
          );
          default = null;
          description = ''
            A snapshot fetched elsewhere (a flake input `hf:…` with `flake = false`, or a
            fetchHuggingFace result) instead of repo/rev/narHash: the flake.lock pins it then.
            `repo` and `kind` still name it in the cache.
          '';
        };
        refs = mkOption {
          type = types.listOf types.str;
          default = [ "main" ];
          example = [ "refs/convert/parquet" ];
          description = "The ref names that resolve to this snapshot in the cache, offline.";
        };
        inCache = mkOption {
          type = types.bool;
          default = true;
          description = "Whether the snapshot goes into the cache (two snapshots of one repo and commit cannot).";
        };
      };
    }
  );
in
{
  options.services.hf-models = {
    models = mkOption {
      type = types.attrsOf model;
      default = { };
      description = "Models and datasets to fetch, by a name of your choosing.";
    };

    paths = mkOption {
      type = types.attrsOf types.path;
      readOnly = true;
      description = "The snapshot of each model, by name (the folder llama.cpp or vLLM is given).";
    };

    cache = mkOption {
      type = types.path;
      readOnly = true;
      description = "One Hugging Face cache holding every model (what `HF_HUB_CACHE` names).";
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      description = "`HF_HUB_CACHE`, and `HF_HUB_OFFLINE=1` unless `offline` is false.";
    };

    offline = mkOption {
      type = types.bool;
      default = true;
      description = "Whether `environment` tells the libraries not to reach the Hub (`HF_HUB_OFFLINE=1`).";
    };
  }
  // (
    if nixos then
      {
        services = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "llama-cpp" ];
          description = "systemd services that get `environment`.";
        };
        systemWide = mkOption {
          type = types.bool;
          default = false;
          description = "Whether every user's session gets `environment` (environment.variables).";
        };
      }
    else
      {
        session = mkOption {
          type = types.bool;
          default = false;
          description = "Whether your session gets `environment` (home.sessionVariables).";
        };
        linkIntoUserCache = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Whether to make the models visible in your own Hugging Face cache (`userCache`), beside
            what you downloaded yourself: a link per repo folder, made at activation only where you
            have no folder of that name (yours are never overwritten), and removed once the model is.
          '';
        };
        userCache = mkOption {
          type = types.str;
          default = "${config.home.homeDirectory}/.cache/huggingface/hub";
          defaultText = lib.literalExpression ''"''${config.home.homeDirectory}/.cache/huggingface/hub"'';
          description = "Your own Hugging Face cache, where `linkIntoUserCache` links the models.";
        };
      }
  );

  config = lib.mkIf (cfg.models != { }) (
    {
      services.hf-models = {
        paths = lib.mapAttrs (_: s: "${s}") snapshots;
        cache = cache;
        inherit environment;
      };
    }
    // (
      if nixos then
        {
          systemd.services = lib.genAttrs cfg.services (_: {
            inherit environment;
          });
          environment.variables = lib.mkIf cfg.systemWide environment;
        }
      else
        {
          home.sessionVariables = lib.mkIf cfg.session environment;
          # A home-manager DAG entry (lib.hm.dag.entryAfter [ "writeBoundary" ] …), written out.
          home.activation.hf-models = lib.mkIf cfg.linkIntoUserCache {
            after = [ "writeBoundary" ];
            before = [ ];
            data = ''
              hfUserCache=${lib.escapeShellArg cfg.userCache}
              mkdir -p "$hfUserCache"
              # Links an earlier activation made, to models since removed.
              for link in "$hfUserCache"/*; do
                if [ -L "$link" ] && [[ "$(readlink "$link")" == ${builtins.storeDir}/*-hf-hub-cache/* ]] \
                  && [ ! -e ${cfg.cache}/"$(basename "$link")" ]; then
                  rm "$link"
                fi
              done
              for repo in ${cfg.cache}/*; do
                target="$hfUserCache/$(basename "$repo")"
                if [ -L "$target" ] && [[ "$(readlink "$target")" == ${builtins.storeDir}/* ]]; then
                  ln -sfn "$repo" "$target"
                elif [ -e "$target" ] || [ -L "$target" ]; then
                  echo "hf-models: $target is your own; leaving it as it is" >&2
                else
                  ln -s "$repo" "$target"
                fi
              done
            '';
          };
        }
    )
  );
}
