#pragma once
#include "compat.hh"

namespace nixhf {

// Adds the directory `tree`, whose NAR hash and size are known, to the store
// as a content-addressed path named `name`, moving it when the store is
// local (the directory is gone afterwards) and copying it otherwise.
nix::StorePath addTree(nix::Store & store, const std::string & name, const std::filesystem::path & tree,
    const nix::Hash & narHash, uint64_t narSize);

} // namespace nixhf
