# programs.nix-hf, for NixOS, nix-darwin and home-manager alike: all three
# have nix.package (the Nix whose build to load) and nix.settings (written
# to /etc/nix/nix.conf, or ~/.config/nix/nix.conf for home-manager), and
# the assertions option.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;
  cfg = config.programs.nix-hf;
  scope = pkgs.callPackage ./packages.nix { };
  supported = import ./supported.nix;
  nixPackage = config.nix.package;
  hasBuild = scope.hasBuild nixPackage;
  described =
    if nixPackage == null then "not set" else "${lib.getName nixPackage} ${nixPackage.version or "(no version)"}";

  # The plugin's own settings, by their names in nix.conf.
  settings = {
    hf-endpoint = cfg.endpoint;
    hf-connections = cfg.connections;
    hf-stall-timeout = cfg.stallTimeout;
    hf-retries = cfg.retries;
    hf-retry-time = cfg.retryTime;
    hf-token-file = cfg.tokenFile;
    hf-resumable-copy = cfg.resumableCopy;
  };

  unset = lib.mkOption {
    type = types.nullOr types.ints.positive;
    default = null;
  };
in
{
  options.programs.nix-hf = {
    enable = lib.mkEnableOption "nix-hf, which makes Hugging Face models and datasets Nix inputs (hf: URLs, builtins.fetchHuggingFace)";

    package = mkOption {
      type = types.package;
      default = scope.forNix nixPackage;
      defaultText = lib.literalMD "nix-hf built for `nix.package`";
      description = ''
        The nix-hf build to load (its `plugin` attribute is what plugin-files
        names). It must be built for exactly the Nix that loads it, which is
        why the default builds it for `nix.package`.
      '';
    };

    endpoint = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://hf-mirror.example.org";
      description = ''
        The Hugging Face Hub to fetch from (`hf-endpoint`); null: `HF_ENDPOINT`,
        else https://huggingface.co. Tokens that name no host (`tokenFile`,
        `HF_TOKEN`) are not sent to an endpoint set here unless `HF_ENDPOINT`
        names it too; give such a Hub an `access-tokens` entry instead.
      '';
    };

    # null leaves the setting out of nix.conf: the plugin's own default
    # holds (`nix config show hf-connections` prints it).
    connections = unset // {
      description = "Connections open at once to the Hub and its CDN (`hf-connections`); null: nix-hf's default.";
    };
    stallTimeout = unset // {
      description = "Seconds a connection may stay silent before the attempt fails (`hf-stall-timeout`); null: nix-hf's default.";
    };
    retries = unset // {
      description = "Attempts at each request before giving up (`hf-retries`); null: nix-hf's default.";
    };
    retryTime = unset // {
      description = "Seconds after a request's first attempt past which no attempt or wait begins (`hf-retry-time`); null: nix-hf's default.";
    };

    resumableCopy = mkOption {
      type = types.nullOr (
        types.enum [
          "fresh"
          "always"
          "never"
        ]
      );
      default = null;
      example = "always";
      description = ''
        Which fetches through the nix-daemon also keep a copy in the user's
        cache so that an interrupted one resumes (`hf-resumable-copy`), at
        the cost of writing every byte twice: `fresh`, new locks only (null:
        nix-hf's default); `always`, locked inputs too (slow or flaky
        networks); `never`, none (the disk writes each byte once).
      '';
    };

    tokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/run/secrets/hf-token";
      description = ''
        A file holding a Hugging Face token (`hf-token-file`), for gated and
        private repos. Only its path goes into nix.conf; the file is read
        when fetching, by the process that evaluates: the user who runs
        `nix build` or `nix flake lock`, and root for `nixos-rebuild`. Make
        it readable by all of them (e.g. mode 0440, group wheel) and by no
        one else. Write the path as a string, never as a Nix path, which
        would copy the token into the world-readable store. The token goes
        only to huggingface.co and to the Hub `HF_ENDPOINT` names.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = hasBuild;
        message = ''
          programs.nix-hf: nix.package is ${described}, for which nix-hf has no build: nix-hf is a plugin
          of upstream Nix ${lib.concatStringsSep ", " supported.upstream} and of Determinate Nix
          ${lib.concatStringsSep ", " supported.determinate} (Lix has a different plugin interface). Set
          nix.package = pkgs.nixVersions.nix_2_35 (or nix_2_34, or Determinate Nix's package), or disable
          programs.nix-hf.
        '';
      }
      {
        assertion = cfg.tokenFile == null || !lib.hasPrefix builtins.storeDir cfg.tokenFile;
        message = ''
          programs.nix-hf.tokenFile is in the Nix store (${toString cfg.tokenFile}), where every user can read
          the token. Keep it outside (e.g. /run/secrets/hf-token, as sops-nix or agenix provide).
        '';
      }
    ];

    nix.settings = lib.mkIf hasBuild (
      {
        plugin-files = [ cfg.package.plugin ];
      }
      // lib.filterAttrs (_: v: v != null) settings
    );
  };
}
