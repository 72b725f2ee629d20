// The plugin's entry point: Nix calls nix_plugin_entry() after dlopen, before
// any evaluation or flake reference parsing.

#include "glue.hh"
#include "fetch.hh"

extern "C" __attribute__((visibility("default"))) void nix_plugin_entry()
{
    nixhf::registerInputScheme();
    nixhf::registerPrimOp();
    nixhf::registerCachePrimOp();
}
