# The model is a flake input (pinned in flake.lock); services.hf-models
# names it, puts it in the machine's Hugging Face cache and gives its path
# to llama.cpp. Nothing is downloaded when the machine boots.
{ config, inputs, ... }:

{
  # nix-hf in the machine's own nix, so that later rebuilds fetch hf: inputs.
  programs.nix-hf.enable = true;

  services.hf-models.models.qwen = {
    repo = "Qwen/Qwen2.5-0.5B-Instruct-GGUF";
    source = inputs.qwen;
  };
  # Programs on the machine (Python ones, say) find the cache offline.
  services.hf-models.systemWide = true;

  services.llama-cpp = {
    enable = true;
    model = "${config.services.hf-models.paths.qwen}/qwen2.5-0.5b-instruct-q4_k_m.gguf";
    port = 8080;
  };

  system.stateVersion = "26.05";
}
