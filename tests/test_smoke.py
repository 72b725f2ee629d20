"""The plugin loads into the real nix and registers what it promises."""


def test_plugin_loads_quietly_and_adds_the_builtin(nix):
    p = nix.run("eval", "--expr", "builtins ? fetchHuggingFace")
    assert p.stdout.strip() == "true"
    assert p.stderr == "", f"loading the plugin printed: {p.stderr}"


def test_without_the_plugin_there_is_no_builtin(nix):
    nix.conf.pop("plugin-files")
    nix.write_conf()
    assert nix.run("eval", "--expr", "builtins ? fetchHuggingFace").stdout.strip() == "false"


def test_hf_is_a_known_fetchTree_type(nix):
    p = nix.fails("eval", "--expr", 'builtins.fetchTree { type = "hf"; repo = "nixhf/tiny"; colour = "red"; }')
    assert "input attribute 'colour' not supported by scheme 'hf'" in p.stderr
    nix.conf.pop("plugin-files")
    nix.write_conf()
    p = nix.fails("eval", "--expr", 'builtins.fetchTree { type = "hf"; repo = "nixhf/tiny"; colour = "red"; }')
    assert "scheme 'hf'" not in p.stderr
