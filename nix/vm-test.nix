# A NixOS machine with programs.nix-hf enabled (the plugin built for its
# nix.package) serves the Hub stand-in and locks a flake whose input is
# hf:nixhf/tiny from it: the module, the build and the plugin together.
{ self, pkgs }:

pkgs.testers.runNixOSTest {
  name = "nix-hf";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];
      programs.nix-hf.enable = true;
      nix.settings.experimental-features = [
        "nix-command"
        "flakes"
      ];
      environment.systemPackages = [ pkgs.python3 ];
      environment.etc."nix-hf-test/standin".source = ../tests/standin;
      environment.etc."nix-hf-test/flake.nix".text = ''
        {
          inputs.model = { url = "hf:nixhf/tiny"; flake = false; };
          outputs = { self, model }: { readme = builtins.readFile "''${model}/README.md"; };
        }
      '';
    };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.succeed("mkdir -p /tmp/hub && cp -r /etc/nix-hf-test/standin /tmp/hub/standin")
    machine.succeed(
        "cd /tmp/hub && (python3 -m standin --ready-file /tmp/hub/ready.json >/tmp/hub/log 2>&1 &)"
    )
    machine.wait_for_file("/tmp/hub/ready.json")
    hub = machine.succeed("python3 -c 'import json; print(json.load(open(\"/tmp/hub/ready.json\"))[\"hub\"])'").strip()
    machine.succeed("mkdir -p /tmp/flake && cp /etc/nix-hf-test/flake.nix /tmp/flake/")
    machine.succeed(f"cd /tmp/flake && HF_ENDPOINT={hub} nix flake lock")
    lock = machine.succeed("cat /tmp/flake/flake.lock")
    assert '"type": "hf"' in lock and '"narHash": "sha256-' in lock, lock
    readme = machine.succeed("cd /tmp/flake && nix eval --raw .#readme")
    assert "A test model" in readme, readme
  '';
}
