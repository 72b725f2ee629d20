#pragma once
#include "compat.hh"

namespace nixhf {

// Adds the directory `tree`, whose NAR hash and size are known, to the store
// as a content-addressed path named `name`, moving it when the store is
// local (the directory is gone afterwards) and copying it otherwise.
nix::StorePath addTree(nix::Store & store, const std::string & name, const std::filesystem::path & tree,
    const nix::Hash & narHash, uint64_t narSize);

// Whether a tree in `dir` can be moved into the store: a local store on the
// same file system.
bool canMoveInto(nix::Store & store, const std::filesystem::path & dir);

// Adds the snapshot whose NAR `nar` streams to the store as a content-
// addressed path named `name`: the store restores and hashes it as it
// arrives (a nix-daemon writes it once, nothing is written here).
nix::StorePath addStream(nix::Store & store, const std::string & name, nix::Source & nar);

} // namespace nixhf
